//! SCIM 2.0 (RFC 7643/7644, RFC 9865) protocol rules for the Users resource.

pub mod cursor;
pub mod doc;
pub mod filter;
pub mod list;
pub mod patch;
pub mod path;
pub mod projection;
pub mod schema;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const BUTTERFLY_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
pub const OKTA_ROLE_SCHEMA: &str = "urn:okta:scim:schemas:core:1.0:Role";
