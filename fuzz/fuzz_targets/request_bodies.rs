//! Request bodies: arbitrary bytes through the `Json` extractor's decoder into every body
//! type of the users, articles and comments APIs, then the field rules their handlers apply.
//! Never a panic, and every refusal is a client error in the documented shape: a 400 for
//! malformed JSON, or a 422 naming at least one field with at least one message.
#![no_main]

use aerie::http::error::Error;
use aerie::http::{articles, comments, users};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let outcomes = users::fuzz_entry::check_bodies(data)
        .into_iter()
        .chain(articles::fuzz_entry::check_bodies(data))
        .chain([comments::fuzz_entry::check_body(data)]);
    for outcome in outcomes {
        match outcome {
            Ok(()) | Err(Error::BadRequest { .. }) => {}
            Err(Error::Unprocessable(fields)) => {
                assert!(!fields.is_empty(), "a 422 naming no field");
                assert!(
                    fields
                        .values()
                        .all(|m| !m.is_empty() && m.iter().all(|m| !m.is_empty()))
                );
            }
            Err(other) => panic!("a body was refused with {other:?}, not a 400 or 422"),
        }
    }
});
