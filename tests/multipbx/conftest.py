"""The admin API fixtures (`tokens`, `client`, `api`: an admin's client of the API of a
single PBX, as the plugins mount it) for this directory's admin API tests."""

from tests.admin.api import api, client, tokens

__all__ = ["api", "client", "tokens"]
