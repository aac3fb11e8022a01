//! Key parsing: any text, and text whose checksum was made valid so the
//! fuzzer reaches past the CRC. A key one format accepts is a key to
//! `verify_any`, and the other way round; nothing panics.

#![no_main]

use keygate::base62;
use keygate::hash::KeyHash;
use keygate::key::{verify_any, KeyEnv, KeyFormat, BODY_LEN, CHECKSUM_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let text = if mode & 1 == 1 {
        with_valid_checksum(text)
    } else {
        text.to_owned()
    };
    check(&text);
});

/// `text` with its last characters replaced by the checksum of the rest.
fn with_valid_checksum(text: &str) -> String {
    let mut cut = text.len().saturating_sub(CHECKSUM_LEN);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = &text[..cut];
    let crc = crc32fast::hash(head.as_bytes()).to_be_bytes();
    format!("{head}{}", base62::encode_fixed(&crc, CHECKSUM_LEN).unwrap())
}

fn check(text: &str) {
    let any = verify_any(text);
    let _ = KeyHash::of_text(text);
    let mut parts = text.splitn(3, '_');
    let (prefix, env) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let format = KeyEnv::parse(env).and_then(|env| KeyFormat::new(prefix, env).ok());
    match &format {
        Some(format) => {
            // The deployment whose prefix and environment the text names
            // decides exactly as the any-prefix check does.
            let parsed = format.parse(text);
            assert_eq!(parsed.is_ok(), any.is_ok(), "{text:?}");
            if let Ok(key) = parsed {
                assert_eq!(key.expose(), text);
                assert_eq!(text.len() - prefix.len() - env.len() - 2, BODY_LEN + CHECKSUM_LEN);
                let hint = key.hint();
                assert!(hint.len() < text.len() && !hint.contains(&text[text.len() - 20..]));
                assert!(KeyHash::of_text(text) == Some(KeyHash::of(&key)));
            }
        }
        // No deployment can issue it: not a key.
        None => assert!(any.is_err(), "accepted {text:?}"),
    }
    // Other deployments refuse it.
    for (p, e) in [("ak", KeyEnv::Live), ("ak", KeyEnv::Test), ("zz9", KeyEnv::Live)] {
        let other = KeyFormat::new(p, e).unwrap();
        if Some(&other) != format.as_ref() {
            assert!(other.parse(text).is_err(), "{p}/{e:?} accepted {text:?}");
        }
    }
}
