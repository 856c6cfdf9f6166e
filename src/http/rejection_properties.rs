//! Every value a field parser rejects becomes the response a client gets: a 422 with an
//! error list under that field and nothing else, whose messages never echo the value, over
//! generated values. The parsers' own properties are in `domain/properties.rs`.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use proptest::prelude::*;

use super::error::Error;
use crate::domain::strategies::{LINE, with_forbidden};
use crate::domain::{
    ArticleBody, Bio, CommentBody, Description, Email, FieldErrors, ImageUrl, Invalid, NewPassword,
    Title, Username, tag_list,
};

/// Runs a rejected value through the handlers' error collector and checks the response a
/// client gets: 422, with an error list under `field` and nothing else.
fn assert_rejected_as<T>(field: &'static str, result: Result<T, Invalid>, value: &str) {
    let mut errors = FieldErrors::default();
    let _ = errors.check(field, result);
    let Err(error) = errors.finish().map_err(Error::from) else {
        panic!("{field}: {value:?} was accepted");
    };
    let Error::Unprocessable(fields) = &error else {
        panic!("{field}: {value:?} gave {error:?}");
    };
    assert_eq!(fields.keys().copied().collect::<Vec<_>>(), [field]);
    for message in &fields[field] {
        assert!(!message.is_empty());
        // Short values can be words of the message ("is"), so only longer ones are checked.
        if value.chars().count() > 12 {
            assert!(
                !message.contains(value),
                "{field}: message echoes the value"
            );
        }
    }
    assert_eq!(
        error.into_response().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn rejected_usernames_are_a_422_on_username(name in prop_oneof![
        "[A-Za-z0-9]{0,5}[ <>@/\\\\ЬｂéÀ][A-Za-z0-9]{0,5}",
        "[a-z]{33,60}",
        "\\.{1,32}",
        with_forbidden("[a-z]{1,10}".boxed()),
        Just(String::new()),
    ]) {
        assert_rejected_as("username", Username::parse(name.clone()), &name);
    }

    #[test]
    fn rejected_emails_are_a_422_on_email(email in prop_oneof![
        "[a-z0-9.]{0,20}",
        "[a-z]{1,10}@[a-z]{1,10}",
        "[a-z]{1,10}@\\.[a-z]{1,10}\\.io",
        "[a-z]{1,10}@[a-z]{1,10}\\.\\.io",
        "[a-z]{0,5} [a-z]{0,5}@x\\.io",
        "[a-z]{1,5}[<>\",@][a-z]{1,5}@x\\.io",
        "[a-z]{65,80}@x\\.io",
        "[a-z]{1,5}@[a-z]{250,260}\\.io",
        with_forbidden("[a-z]{1,10}@[a-z]{1,10}\\.io".boxed()),
    ]) {
        assert_rejected_as("email", Email::parse(email.clone()), &email);
    }

    #[test]
    fn passwords_out_of_limits_are_a_422_on_password(password in prop_oneof![
        "[ -~]{0,11}",
        "[ -~]{129,200}",
        with_forbidden("[a-z]{12,20}".boxed()),
        "[a-z]{6}\n[a-z]{6}",
    ]) {
        assert_rejected_as("password", NewPassword::parse(password.clone().into(), 0, &[]), &password);
    }

    #[test]
    fn rejected_titles_are_a_422_on_title(title in prop_oneof![
        " {0,5}",
        "[a-z]{201,230}",
        "[a-z]{1,10}\n[a-z]{1,10}",
        with_forbidden(LINE.boxed()),
    ]) {
        assert_rejected_as("title", Title::parse(title.clone()), &title);
    }

    #[test]
    fn rejected_multi_line_fields_are_a_422_on_their_field(text in with_forbidden("[a-z\n]{1,30}".boxed())) {
        assert_rejected_as("description", Description::parse(text.clone()), &text);
        assert_rejected_as("body", ArticleBody::parse(text.clone()), &text);
        assert_rejected_as("body", CommentBody::parse(text.clone()), &text);
        assert_rejected_as("bio", Bio::parse(text.clone()), &text);
    }

    #[test]
    fn rejected_tags_are_a_422_on_tag_list(tags in prop_oneof![
        prop::collection::vec("[a-z]{1,5}", 21..30),
        prop::collection::vec(prop_oneof!["[a-z]{41,50}", " {0,3}", with_forbidden("[a-z]{1,5}".boxed())], 1..3),
    ]) {
        let shown = tags.join(",");
        assert_rejected_as("tagList", tag_list(tags), &shown);
    }

    #[test]
    fn rejected_image_urls_are_a_422_on_image(url in prop_oneof![
        "(javascript|JavaScript|data|file|ftp|vbscript):[a-z/(),.]{1,20}",
        "http://[a-z]{1,10}\\.io/[a-z]{0,10}",
        "https://[a-z]{1,10}\\.io/[a-z]{1,5} [a-z]{1,5}",
        "[a-z]{1,10}\\.io/[a-z]{0,10}",
    ]) {
        assert_rejected_as("image", ImageUrl::parse(url.clone(), false), &url);
    }
}
