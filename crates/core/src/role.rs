//! The five Butterfly roles and their permission matrix.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A team member's role. Exactly one per user; `read_only` when nothing else is assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    Admin,
    BackupOperator,
    Auditor,
    ReadOnly,
}

/// What a role may do. The seed's capabilities, split into read and write where they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Team members and their roles.
    ManageTeam,
    /// Plan, invoices, payment.
    ManageBilling,
    /// SSO (OIDC) and SCIM settings, including the SCIM token.
    ManageSsoScim,
    /// Read the audit trail.
    ViewAuditTrail,
    /// See connections (the systems being backed up).
    ViewConnections,
    /// Create, edit and delete connections.
    ManageConnections,
    /// Run a connection test.
    TestConnections,
    /// See the list of backups and their status.
    ViewBackups,
    /// Start backups.
    RunBackups,
    /// Open what is inside a backup.
    ViewBackupContents,
    /// Restore data from a backup.
    Restore,
    /// See backup schedules.
    ViewSchedules,
    /// Change backup schedules.
    EditSchedules,
    /// See reports.
    ViewReports,
    /// See compliance reports.
    ViewCompliance,
    /// Generate and export compliance reports.
    ManageCompliance,
}

impl Permission {
    pub const ALL: [Permission; 16] = [
        Permission::ManageTeam,
        Permission::ManageBilling,
        Permission::ManageSsoScim,
        Permission::ViewAuditTrail,
        Permission::ViewConnections,
        Permission::ManageConnections,
        Permission::TestConnections,
        Permission::ViewBackups,
        Permission::RunBackups,
        Permission::ViewBackupContents,
        Permission::Restore,
        Permission::ViewSchedules,
        Permission::EditSchedules,
        Permission::ViewReports,
        Permission::ViewCompliance,
        Permission::ManageCompliance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ManageTeam => "manage_team",
            Permission::ManageBilling => "manage_billing",
            Permission::ManageSsoScim => "manage_sso_scim",
            Permission::ViewAuditTrail => "view_audit_trail",
            Permission::ViewConnections => "view_connections",
            Permission::ManageConnections => "manage_connections",
            Permission::TestConnections => "test_connections",
            Permission::ViewBackups => "view_backups",
            Permission::RunBackups => "run_backups",
            Permission::ViewBackupContents => "view_backup_contents",
            Permission::Restore => "restore",
            Permission::ViewSchedules => "view_schedules",
            Permission::EditSchedules => "edit_schedules",
            Permission::ViewReports => "view_reports",
            Permission::ViewCompliance => "view_compliance",
            Permission::ManageCompliance => "manage_compliance",
        }
    }
}

impl Role {
    pub const ALL: [Role; 5] = [Role::SuperAdmin, Role::Admin, Role::BackupOperator, Role::Auditor, Role::ReadOnly];

    /// The canonical key, as sent and returned over SCIM.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Admin => "admin",
            Role::BackupOperator => "backup_operator",
            Role::Auditor => "auditor",
            Role::ReadOnly => "read_only",
        }
    }

    /// A human label, for the `/Roles` endpoint and pages.
    pub fn display_name(self) -> &'static str {
        match self {
            Role::SuperAdmin => "Super Admin",
            Role::Admin => "Admin",
            Role::BackupOperator => "Backup Operator",
            Role::Auditor => "Auditor",
            Role::ReadOnly => "Read Only",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Role::SuperAdmin => "Everything, including team management, billing and SSO/SCIM settings.",
            Role::Admin => "Connections, backups, restore, schedules and compliance reports.",
            Role::BackupOperator => "Run backups, test connections, edit schedules and view reports.",
            Role::Auditor => "Read-only access to backups, schedules, compliance and reports.",
            Role::ReadOnly => "Connections and the backup list only; never backup contents.",
        }
    }

    /// Parses a role as identity providers send it: matched case-insensitively, with spaces
    /// and hyphens taken as underscores (`Backup Operator`, `backup-operator`).
    pub fn parse(s: &str) -> Option<Role> {
        let key: String =
            s.trim().chars().map(|c| if c == ' ' || c == '-' { '_' } else { c.to_ascii_lowercase() }).collect();
        Role::ALL.into_iter().find(|r| r.as_str() == key || r.as_str().replace('_', "") == key)
    }

    /// [`Role::parse`] for a value a person typed: an unknown role is `InvalidValue` naming the
    /// roles there are.
    pub fn from_name(s: &str) -> crate::Result<Role> {
        Role::parse(s).ok_or_else(|| {
            crate::Error::InvalidValue(format!(
                "unknown role {s:?}; one of {}",
                Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// The permission matrix, as code.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::SuperAdmin => &Permission::ALL,
            Role::Admin => &[
                ViewConnections,
                ManageConnections,
                TestConnections,
                ViewBackups,
                RunBackups,
                ViewBackupContents,
                Restore,
                ViewSchedules,
                EditSchedules,
                ViewReports,
                ViewCompliance,
                ManageCompliance,
            ],
            Role::BackupOperator => {
                &[ViewConnections, TestConnections, ViewBackups, RunBackups, ViewSchedules, EditSchedules, ViewReports]
            }
            Role::Auditor => {
                &[ViewConnections, ViewBackups, ViewSchedules, ViewReports, ViewCompliance, ViewAuditTrail]
            }
            Role::ReadOnly => &[ViewConnections, ViewBackups],
        }
    }

    pub fn can(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Permission::*;
    use super::*;

    #[test]
    fn parses_what_idps_send() {
        assert_eq!(Role::parse("super_admin"), Some(Role::SuperAdmin));
        assert_eq!(Role::parse("Super Admin"), Some(Role::SuperAdmin));
        assert_eq!(Role::parse("BACKUP-OPERATOR"), Some(Role::BackupOperator));
        assert_eq!(Role::parse("readonly"), Some(Role::ReadOnly));
        assert_eq!(Role::parse(" Auditor "), Some(Role::Auditor));
        assert_eq!(Role::parse("owner"), None);
        assert_eq!(Role::parse(""), None);
    }

    #[test]
    fn matrix_follows_the_product_definition() {
        // Only super_admin manages the team, billing and SSO/SCIM.
        for p in [ManageTeam, ManageBilling, ManageSsoScim] {
            let holders: Vec<Role> = Role::ALL.into_iter().filter(|r| r.can(p)).collect();
            assert_eq!(holders, vec![Role::SuperAdmin], "{p:?}");
        }
        assert!(Role::Admin.can(Restore) && Role::Admin.can(ManageConnections) && Role::Admin.can(ManageCompliance));
        assert!(Role::BackupOperator.can(RunBackups) && Role::BackupOperator.can(TestConnections));
        assert!(Role::BackupOperator.can(EditSchedules) && Role::BackupOperator.can(ViewReports));
        assert!(!Role::BackupOperator.can(Restore) && !Role::BackupOperator.can(ManageConnections));
        for p in Role::Auditor.permissions() {
            assert!(p.as_str().starts_with("view_"), "auditor is read-only, has {p:?}");
        }
        assert!(Role::Auditor.can(ViewCompliance) && Role::Auditor.can(ViewReports));
        assert_eq!(Role::ReadOnly.permissions(), &[ViewConnections, ViewBackups]);
        // Backup contents: never for read_only (nor the other read roles).
        for r in [Role::ReadOnly, Role::Auditor, Role::BackupOperator] {
            assert!(!r.can(ViewBackupContents), "{r}");
        }
        // Each role's set is a subset of super_admin's, and roles are ordered by power.
        for r in Role::ALL {
            assert!(r.permissions().iter().all(|p| Role::SuperAdmin.can(*p)));
        }
        assert!(Role::ReadOnly.permissions().iter().all(|p| Role::Auditor.can(*p)));
    }
}
