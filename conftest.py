"""Session-wide test set-up: worker identities never land in the checkout.

Code that needs this process's worker UUID reads the file named by
``ZC_ASYNC_UUID`` and creates ``uuid.txt`` in the working directory when the
variable is unset; tests that do not set their own get a file in a
temporary directory instead.
"""
import pytest

from plone.app.asyncjobs.engine import instanceuuid


@pytest.fixture(scope="session", autouse=True)
def private_worker_identity(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv(instanceuuid.ENVIRONMENT_VARIABLE,
                 str(tmp_path_factory.mktemp("identity") / "uuid.txt"))
    yield
    patch.undo()
