"""huggingface_hub, the Hub's own client, against the fake Hub of tests/common/fake_hub.rs.

The hub tests are only as good as the fake Hub is faithful: this lists a repo, downloads a
GGUF (LFS, through the redirect) and a text file into CACHE, and checks that the client reads
the fake's gated, missing-repo and missing-file answers as the Hub's own errors. The Rust side
then checks the cache it wrote with the same checks the hub tests apply to gguf-serve's.

Usage: hf_hub_client.py ENDPOINT CACHE REPO GGUF GATED_REPO TOKEN; prints "ok" at the end.
"""

import os
import sys

os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from huggingface_hub import HfApi, hf_hub_download  # noqa: E402
from huggingface_hub.utils import (  # noqa: E402
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
)

endpoint, cache, repo, gguf, gated, token = sys.argv[1:7]
api = HfApi(endpoint=endpoint, token=False)

tree = {f.path: f for f in api.list_repo_tree(repo, recursive=True)}
assert tree[gguf].lfs is not None and tree[gguf].lfs.size == tree[gguf].size, tree
assert tree["README.md"].lfs is None, tree
info = api.model_info(repo, files_metadata=True)
assert gguf in [s.rfilename for s in info.siblings], info

for name in [gguf, "README.md"]:
    path = hf_hub_download(repo, name, cache_dir=cache, endpoint=endpoint, token=False)
    assert path.endswith(f"/snapshots/{info.sha}/{name}"), path


def fails(error, *args, **kwargs):
    try:
        hf_hub_download(*args, cache_dir=cache, endpoint=endpoint, **kwargs)
    except error:
        return
    raise AssertionError(f"{args} did not raise {error.__name__}")


fails(GatedRepoError, gated, gguf, token=False)
fails(GatedRepoError, gated, gguf, token="hf_wrong")
fails(RepositoryNotFoundError, "org/missing", gguf, token=False)
fails(EntryNotFoundError, repo, "nope.gguf", token=False)
hf_hub_download(gated, gguf, cache_dir=cache, endpoint=endpoint, token=token)
print("ok")
