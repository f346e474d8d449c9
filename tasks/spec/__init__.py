"""What the user asks for: the typed release specs. `common` holds the shared types (names, image references,
deadlines), `blue_green` and `canary` one spec each, `loading` turns files, YAML and dicts into specs or BadInput.
Input bounds live beside them: `image_ref` (the reference grammar, shared with the JSON schema), `yaml_bounded`
(YAML within depth, alias and node bounds), `manifest_param` (large manifests packed as flow parameters).
The names most code needs are re-exported here.
"""

from prefect_greenlight.tasks.spec.blue_green import (
    Approval,
    ApprovalMode,
    BlueGreenSpec,
    Cleanup,
    CleanupMode,
    PostSwitch,
    RollbackGreen,
    SmokeCheck,
)
from prefect_greenlight.tasks.spec.common import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    Deadlines,
    ImageRef,
    Name,
    Seconds,
    SpecModel,
    valid_image,
)
from prefect_greenlight.tasks.spec.hooks import Hook, HookPoint, JobHook, WebhookHook
from prefect_greenlight.tasks.spec.loading import load_yaml_documents, parse_spec

__all__ = [
    "Approval", "ApprovalMode", "BlueGreenSpec", "Cleanup", "CleanupMode", "DNS1123_LABEL", "DNS1123_SUBDOMAIN",
    "Deadlines", "Hook", "HookPoint", "ImageRef", "JobHook", "Name", "PostSwitch", "RollbackGreen", "Seconds",
    "SmokeCheck", "SpecModel", "WebhookHook", "load_yaml_documents", "parse_spec", "valid_image",
]
