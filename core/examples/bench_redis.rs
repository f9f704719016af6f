//! RedisStore save/get/take throughput on one connection, unpipelined (each call awaits its answer), for
//! scripts/bench-redis.sh. Usage: bench_redis <redis url> <n>. Prints one JSON object of ops/s.

use std::time::{Duration, Instant};

use fastmcp_auth::blocking;
use fastmcp_auth::store::Store;
use fastmcp_auth::{RedisStore, RedisStoreOptions};
use serde_json::json;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (url, n) = (a[0].clone(), a[1].parse::<u32>().unwrap());
    let value = json!({"upstreamTokenKey": "x".repeat(3)});
    let rt = fastmcp_auth::runtime::runtime().unwrap();
    let s = rt
        .block_on(RedisStore::open(RedisStoreOptions::new(&url)))
        .unwrap();
    let rate = |t: Instant| n as f64 / t.elapsed().as_secs_f64();
    let (save, get, take) = rt.block_on(async {
        let t = Instant::now();
        for i in 0..n {
            s.save(
                &format!("bench:{i}"),
                value.clone(),
                Some(Duration::from_secs(600)),
            )
            .await
            .unwrap();
        }
        let save = rate(t);
        let t = Instant::now();
        for i in 0..n {
            s.get(&format!("bench:{i}")).await.unwrap();
        }
        let get = rate(t);
        let t = Instant::now();
        for i in 0..n {
            s.take(&format!("bench:{i}")).await.unwrap();
        }
        (save, get, rate(t))
    });
    // The blocking facade (what C and Python threads see).
    let b = blocking::Store::redis(RedisStoreOptions::new(&url)).unwrap();
    let t = Instant::now();
    for i in 0..n {
        b.get(&format!("bench:{i}")).unwrap();
    }
    let blocking_get = rate(t);
    println!(
        "{}",
        json!({"save": save, "get": get, "take": take, "blocking_get": blocking_get})
    );
}
