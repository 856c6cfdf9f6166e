//! Roles and what they may do. The role -> permission matrix is this one table; every
//! authorization decision asks [`Role::can`].

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Editor,
    Admin,
}

/// Permissions beyond what every signed-in user may do to their own content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Edit any article, not only one's own.
    ArticleUpdateAny,
    /// Delete any article.
    ArticleDeleteAny,
    /// Delete any comment.
    CommentDeleteAny,
    UserReadAny,
    UserRoleSet,
    UserDisable,
    /// Delete any account (anonymise or remove, as `AERIE_ACCOUNT_DELETION` says).
    UserDeleteAny,
    SessionRevokeAny,
    AuditRead,
}

impl Permission {
    /// The name the audit trail records (`access_denied`'s `permission`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ArticleUpdateAny => "article_update_any",
            Self::ArticleDeleteAny => "article_delete_any",
            Self::CommentDeleteAny => "comment_delete_any",
            Self::UserReadAny => "user_read_any",
            Self::UserRoleSet => "user_role_set",
            Self::UserDisable => "user_disable",
            Self::UserDeleteAny => "user_delete_any",
            Self::SessionRevokeAny => "session_revoke_any",
            Self::AuditRead => "audit_read",
        }
    }
}

impl Role {
    pub fn can(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Editor => matches!(
                permission,
                ArticleUpdateAny | ArticleDeleteAny | CommentDeleteAny
            ),
            Role::User => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(Role::User),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editors_moderate_content_but_do_not_administer() {
        assert!(Role::Editor.can(Permission::ArticleUpdateAny));
        assert!(Role::Editor.can(Permission::CommentDeleteAny));
        assert!(!Role::Editor.can(Permission::UserRoleSet));
        assert!(!Role::Editor.can(Permission::AuditRead));
    }

    #[test]
    fn users_have_no_extra_permissions_and_admins_have_all() {
        for p in [
            Permission::ArticleUpdateAny,
            Permission::UserDisable,
            Permission::UserDeleteAny,
            Permission::AuditRead,
        ] {
            assert!(!Role::User.can(p));
            assert!(Role::Admin.can(p));
        }
    }

    #[test]
    fn role_names_round_trip() {
        for role in [Role::User, Role::Editor, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
