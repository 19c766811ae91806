"""The chaos suite reads the local servers' addresses like the integration tests."""

from tests.integration.conftest import dev_env

__all__ = ["dev_env"]
