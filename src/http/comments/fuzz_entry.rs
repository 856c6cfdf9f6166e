//! The fuzz targets' way in (fuzz/fuzz_targets/request_bodies.rs). The comment body type is
//! private, so the fuzzer cannot name it: this decodes bytes into it with the `Json`
//! extractor's own decoder, then applies the field rule the handler applies.

use super::CommentWrapper;
use crate::domain::CommentBody;
use crate::domain::FieldErrors;
use crate::http::error::Result;
use crate::http::extract::decode_json;

/// `Ok` for a body the handler would accept.
pub fn check_body(bytes: &[u8]) -> Result<()> {
    let CommentWrapper { comment } = decode_json::<CommentWrapper>(bytes)?;
    let mut errors = FieldErrors::default();
    errors.required("body", comment.body, CommentBody::parse);
    Ok(errors.finish()?)
}
