//! Response shapes shared by several resources. They hold only public fields: no email
//! (except the caller's own, in the User shape), no hash, no internal id, no role of others.

use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::store::{ArticleRow, CommentRow, ProfileRow};

#[derive(Serialize, ToSchema)]
pub struct Profile {
    pub username: String,
    /// `null` when unset (always present, as RealWorld clients expect).
    #[schema(required = true)]
    pub bio: Option<String>,
    #[schema(required = true)]
    pub image: Option<String>,
    pub following: bool,
}

impl From<ProfileRow> for Profile {
    fn from(row: ProfileRow) -> Self {
        Self {
            username: row.username,
            bio: row.bio,
            image: row.image,
            following: row.following != 0,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Article {
    pub slug: String,
    pub title: String,
    pub description: String,
    /// Left out of list responses, as the RealWorld spec does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body rendered to sanitized HTML; only with `body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_html: Option<String>,
    pub tag_list: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub favorited: bool,
    pub favorites_count: i64,
    pub author: Profile,
}

impl Article {
    /// The full article, with its Markdown source and its stored HTML.
    pub fn full(row: ArticleRow, html: String) -> Self {
        let mut article = Self::build(row, true);
        article.body_html = Some(html);
        article
    }

    /// The list form: everything but the body.
    pub fn summary(row: ArticleRow) -> Self {
        Self::build(row, false)
    }

    fn build(row: ArticleRow, with_body: bool) -> Self {
        let tag_list = row.tag_list();
        Self {
            slug: row.slug,
            title: row.title,
            description: row.description,
            body: with_body.then_some(row.body),
            body_html: None,
            tag_list,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
            favorited: row.favorited != 0,
            favorites_count: row.favorites_count,
            author: Profile {
                username: row.author_username,
                bio: row.author_bio,
                image: row.author_image,
                following: row.author_following != 0,
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub body: String,
    pub body_html: String,
    pub author: Profile,
}

impl Comment {
    /// The comment, with its Markdown source and its stored HTML.
    pub fn new(row: CommentRow, html: String) -> Self {
        Self {
            id: row.id,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
            body_html: html,
            body: row.body,
            author: Profile {
                username: row.author_username,
                bio: row.author_bio,
                image: row.author_image,
                following: row.author_following != 0,
            },
        }
    }
}
