//! The fuzz targets' way in (fuzz/fuzz_targets/request_bodies.rs). This module's request
//! body types are private, so the fuzzer cannot name them: this decodes bytes into each of
//! them with the `Json` extractor's own decoder, then applies the field rules the handlers
//! apply before they touch the store.

use super::{ArticleBodyWrapper, ArticleUpdateRequest, NewArticleRequest};
use crate::domain::FieldErrors;
use crate::domain::{ArticleBody, Description, Slug, Title, tag_list};
use crate::http::error::Result;
use crate::http::extract::decode_json;

/// One outcome per body type: `Ok` for a body a handler would accept.
pub fn check_bodies(bytes: &[u8]) -> [Result<()>; 2] {
    [new_article(bytes), article_update(bytes)]
}

fn new_article(bytes: &[u8]) -> Result<()> {
    let ArticleBodyWrapper { article } =
        decode_json::<ArticleBodyWrapper<NewArticleRequest>>(bytes)?;
    let mut errors = FieldErrors::default();
    let title = errors.required("title", article.title, Title::parse);
    errors.required("description", article.description, Description::parse);
    errors.required("body", article.body, ArticleBody::parse);
    errors.check("tagList", tag_list(article.tag_list.unwrap_or_default()));
    // The slug is derived before the insert; deriving it must not fail either.
    title.as_ref().map(Slug::from_title);
    Ok(errors.finish()?)
}

fn article_update(bytes: &[u8]) -> Result<()> {
    let ArticleBodyWrapper { article } =
        decode_json::<ArticleBodyWrapper<ArticleUpdateRequest>>(bytes)?;
    let mut errors = FieldErrors::default();
    let title = article
        .title
        .and_then(|v| errors.check("title", Title::parse(v)));
    article
        .description
        .and_then(|v| errors.check("description", Description::parse(v)));
    article
        .body
        .and_then(|v| errors.check("body", ArticleBody::parse(v)));
    if let Some(list) = article.tag_list {
        errors.check("tagList", tag_list(list));
    }
    title.as_ref().map(Slug::from_title);
    Ok(errors.finish()?)
}
