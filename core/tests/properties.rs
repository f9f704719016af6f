//! Property tests: random keys never collide or escape; issue→verify round-trips; any byte flip fails.

use fastmcp_auth::store::{DiskStore, DiskStoreOptions, FileNaming, SyncStore};
use fastmcp_auth::{ClaimLayout, IssueOptions, JwtIssuer, TokenUse};
use proptest::prelude::*;

fn store() -> (tempfile::TempDir, DiskStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = DiskStore::open(DiskStoreOptions {
        cleanup_interval: None,
        ..DiskStoreOptions::new(dir.path())
    })
    .unwrap();
    (dir, s)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Safe naming is injective; fastmcp's naming (the default) is not (`a:b` and `a;b` share `a_b.json`, which
    /// the store resolves by recording the key in the file), so only safety is asserted of it.
    #[test]
    fn file_names_are_safe_and_injective(a in "\\PC{1,400}", b in "\\PC{1,400}") {
        let (_dir, fastmcp) = store();
        let safe_dir = tempfile::tempdir().unwrap();
        let safe = DiskStore::open(DiskStoreOptions {
            cleanup_interval: None,
            naming: FileNaming::Safe,
            ..DiskStoreOptions::new(safe_dir.path())
        })
        .unwrap();
        for s in [&fastmcp, &safe] {
            for n in [s.file_name_for(&a).unwrap(), s.file_name_for(&b).unwrap()] {
                prop_assert!(!n.contains('/') && !n.contains('\0'));
                prop_assert!(n != "." && n != ".." && !n.starts_with('.'));
                prop_assert!(n.len() <= 255);
            }
        }
        if a != b {
            prop_assert_ne!(safe.file_name_for(&a).unwrap(), safe.file_name_for(&b).unwrap());
        }
    }

    #[test]
    fn random_keys_round_trip_in_the_directory(keys in proptest::collection::hash_set(any::<String>().prop_filter("non-empty", |s| !s.is_empty()), 1..12)) {
        let (dir, s) = store();
        for (i, k) in keys.iter().enumerate() {
            s.save_sync(k, serde_json::json!(i), None).unwrap();
        }
        for (i, k) in keys.iter().enumerate() {
            prop_assert_eq!(s.get_sync(k).unwrap(), Some(serde_json::json!(i)));
        }
        prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), keys.len());
        let mut listed = s.keys_sync().unwrap();
        listed.sort();
        let mut expected: Vec<String> = keys.iter().cloned().collect();
        expected.sort();
        prop_assert_eq!(listed, expected);
    }

    #[test]
    fn issue_verify_round_trip(client in "\\PC{0,40}", scopes in proptest::collection::vec("[a-z:]{1,10}", 0..5),
                               py in any::<bool>(), refresh in any::<bool>()) {
        let layout = if py { ClaimLayout::FastmcpPython } else { ClaimLayout::FastmcpTs };
        let i = JwtIssuer::new("https://iss", "https://aud", b"key").unwrap().with_layout(layout);
        let (t, use_) = if refresh {
            (i.issue_refresh_token(&client, &scopes, IssueOptions::default()).unwrap(), TokenUse::Refresh)
        } else {
            (i.issue_access_token(&client, &scopes, IssueOptions::default()).unwrap(), TokenUse::Access)
        };
        let c = i.verify(&t, use_).unwrap();
        prop_assert_eq!(c["client_id"].as_str().unwrap(), client.as_str());
    }

    #[test]
    fn any_byte_flip_fails(pos in any::<prop::sample::Index>(), replacement in any::<u8>()) {
        let i = JwtIssuer::new("https://iss", "https://aud", b"key").unwrap();
        let t = i.issue_access_token("c", &["s"], IssueOptions::default()).unwrap();
        let mut bytes = t.clone().into_bytes();
        let p = pos.index(bytes.len());
        prop_assume!(bytes[p] != replacement);
        bytes[p] = replacement;
        // A flip that is not even text cannot be presented as a token.
        if let Ok(s) = String::from_utf8(bytes) {
            prop_assert!(i.verify(&s, TokenUse::Access).is_err(), "flip at {} accepted", p);
        }
    }
}
