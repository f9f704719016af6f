//! `runtime::lower_thread_priority`: the runtime's threads (workers and the blocking pool) start at the nice value
//! asked for; the caller's own thread is untouched. Its own test binary: the runtime is one per process.

#[cfg(target_os = "linux")]
#[test]
fn runtime_threads_start_at_the_lowered_priority() {
    use fastmcp_auth::runtime::{lower_thread_priority, runtime};
    use rustix::process::getpriority_process;
    let mine = getpriority_process(None).unwrap();
    lower_thread_priority(0); // ignored: out of range
    lower_thread_priority(42); // ignored
    lower_thread_priority(7);
    let rt = runtime().unwrap();
    let worker = rt.block_on(async {
        tokio::spawn(async { getpriority_process(None).unwrap() })
            .await
            .unwrap()
    });
    let blocking = rt.block_on(async {
        tokio::task::spawn_blocking(|| getpriority_process(None).unwrap())
            .await
            .unwrap()
    });
    // 7, or what the process already had when that was lower still and raising it back needs privileges.
    assert!(
        worker == 7 || (worker == mine && mine > 7),
        "a worker thread: {worker}"
    );
    assert_eq!(blocking, worker, "a blocking-pool thread");
    assert_eq!(
        getpriority_process(None).unwrap(),
        mine,
        "the caller's thread is untouched"
    );
}
