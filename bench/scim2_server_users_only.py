#!/usr/bin/env python3
"""Writes a Users-only configuration for scim2-server shaped like Butterfly: the RFC 7643 User
schema plus a role extension, one User resource type, no Groups, no Bulk/sort/ETag.

usage: scim2_server_users_only.py OUT_DIR   → OUT_DIR/{schemas,resource-types,spc}.json
"""
import importlib.resources
import json
import os
import sys

EXT = "urn:ietf:params:scim:schemas:extension:butterfly:2.0:User"


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    defaults = json.loads((importlib.resources.files("scim2_server") / "resources" / "default-schemas.json").read_text())
    user = next(s for s in defaults if s["id"] == "urn:ietf:params:scim:schemas:core:2.0:User")
    role = {"name": "role", "type": "string", "multiValued": False, "required": False, "caseExact": False,
            "mutability": "readWrite", "returned": "default", "uniqueness": "none", "description": "Butterfly role",
            "canonicalValues": ["super_admin", "admin", "backup_operator", "auditor", "read_only"]}
    ext = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], "id": EXT, "name": "ButterflyUser",
           "description": "Role extension", "attributes": [role],
           "meta": {"resourceType": "Schema", "location": f"/v2/Schemas/{EXT}"}}
    rt = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "User", "name": "User",
          "endpoint": "/Users", "description": "User", "schema": user["id"],
          "schemaExtensions": [{"schema": EXT, "required": False}]}
    spc = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
           "patch": {"supported": True}, "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
           "filter": {"supported": True, "maxResults": 1000}, "changePassword": {"supported": False},
           "sort": {"supported": False}, "etag": {"supported": False}}
    for name, doc in [("schemas", [user, ext]), ("resource-types", [rt]), ("spc", spc)]:
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
