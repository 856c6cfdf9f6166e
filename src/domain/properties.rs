//! Properties of the field parsers, over generated values: every accepted value survives the
//! trip a real one takes (a JSON string in the request, text in the store, back out through
//! the same parser), and parsing it again changes nothing. The hand-picked edge cases sit
//! beside each type; these cover the space between them. That every rejected value becomes a
//! 422 naming its field is the HTTP layer's promise, proven in `http/rejection_properties.rs`.

use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use super::strategies::LINE;
use super::*;

/// A value as a client sends it (a JSON string) and as the store hands it back (the same
/// text, re-read and re-parsed on the way out).
fn through_json_and_store(value: &str) -> String {
    let json = serde_json::to_string(value).unwrap_or_default();
    let decoded: String = serde_json::from_str(&json).unwrap_or_default();
    decoded.clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn accepted_usernames_survive_the_store_and_their_key_is_stable(name in "[A-Za-z0-9_.-]{1,32}") {
        prop_assume!(!name.chars().all(|c| c == '.'), "dots alone are refused");
        let parsed = Username::parse(through_json_and_store(&name)).expect("valid");
        let again = Username::parse(parsed.as_str().to_owned()).expect("stored form parses");
        prop_assert_eq!(&again, &parsed);
        prop_assert_eq!(username_key(&parsed.key()), parsed.key());
        prop_assert_eq!(Username::parse(parsed.key()).map(|k| k.key()), Ok(parsed.key()));
    }

    #[test]
    fn accepted_emails_survive_the_store_and_their_key_is_stable(
        email in "[A-Za-z0-9._%+-]{1,30}@[A-Za-z0-9-]{1,20}(\\.[A-Za-z0-9-]{1,10}){1,3}"
    ) {
        let parsed = Email::parse(through_json_and_store(&email)).expect("valid");
        prop_assert_eq!(parsed.as_str(), email.as_str());
        prop_assert_eq!(Email::parse(parsed.as_str().to_owned()), Ok(parsed.clone()));
        prop_assert_eq!(email_key(&parsed.key()), parsed.key());
        prop_assert_eq!(email_key(&email.to_uppercase()), parsed.key());
    }

    #[test]
    fn passwords_of_12_to_128_characters_are_kept_exactly_as_sent(
        password in "[ -~é]{12,128}"
    ) {
        // Strength is judged by zxcvbn (its own tests beside the type); with the score bar
        // at 0 this checks the length rule and that nothing is trimmed or folded.
        let sent: SecretString = through_json_and_store(&password).into();
        let parsed = NewPassword::parse(sent, 0, &[]).expect("within limits");
        prop_assert_eq!(parsed.secret().expose_secret(), password.as_str());
        prop_assert!(password_within_limits(parsed.secret()));
    }

    #[test]
    fn accepted_titles_survive_the_store_and_slug_stably(title in LINE) {
        let parsed = Title::parse(through_json_and_store(&title)).expect("valid");
        prop_assert_eq!(parsed.as_str(), title.as_str());
        let slug = Slug::from_title(&parsed);
        // The slug of the slug is itself: re-deriving it from a stored one changes nothing.
        let again = Title::parse(slug.as_str().to_owned()).map(|t| Slug::from_title(&t));
        prop_assert_eq!(again.as_ref().map(Slug::as_str), Ok(slug.as_str()));
    }

    #[test]
    fn accepted_multi_line_fields_survive_the_store(text in "[A-Za-z0-9][A-Za-z0-9 .,#*_`>\\[\\]()\n\t-]{0,200}") {
        let stored = through_json_and_store(&text);
        prop_assert_eq!(Description::parse(stored.clone()).map(Description::into_inner), Ok(text.clone()));
        prop_assert_eq!(ArticleBody::parse(stored.clone()).map(ArticleBody::into_inner), Ok(text.clone()));
        prop_assert_eq!(CommentBody::parse(stored.clone()).map(|c| c.as_str().to_owned()), Ok(text.clone()));
        prop_assert_eq!(Bio::parse(stored).map(Bio::into_inner), Ok(text));
    }

    #[test]
    fn accepted_tag_lists_come_back_sorted_unique_and_unchanged(tags in prop::collection::vec("[a-z0-9][a-z0-9 -]{0,39}", 0..20)) {
        let parsed = tag_list(tags.iter().map(|t| through_json_and_store(t)).collect()).expect("valid");
        let names: Vec<&str> = parsed.iter().map(Tag::as_str).collect();
        let mut expected: Vec<&str> = tags.iter().map(String::as_str).collect();
        expected.sort_unstable();
        expected.dedup();
        prop_assert_eq!(names, expected);
    }

    #[test]
    fn accepted_image_urls_survive_the_store(url in "https://[a-z0-9-]{1,20}(\\.[a-z]{2,6}){1,2}(/[A-Za-z0-9._~-]{0,20}){0,3}") {
        let parsed = ImageUrl::parse(through_json_and_store(&url), false).map(ImageUrl::into_inner);
        prop_assert_eq!(parsed, Ok(url));
    }
}
