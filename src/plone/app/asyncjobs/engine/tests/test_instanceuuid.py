"""The worker identity: a UUID kept in the file ZC_ASYNC_UUID names."""
import uuid
from pathlib import Path

import pytest

from plone.app.asyncjobs.engine import instanceuuid
from plone.app.asyncjobs.engine.instanceuuid import ENVIRONMENT_VARIABLE
from plone.app.asyncjobs.engine.instanceuuid import configured_uuid
from plone.app.asyncjobs.engine.instanceuuid import get_uuid
from plone.app.asyncjobs.engine.instanceuuid import uuid_path
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.tests import jobs


def test_the_file_is_created_where_the_variable_says(tmp_path):
    path = tmp_path / "uuid.txt"
    assert uuid_path() == path
    assert not path.exists()
    value = get_uuid()
    assert isinstance(value, uuid.UUID)
    lines = path.read_text().splitlines()
    assert lines[0] == str(value)
    assert "identity of one worker process" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["uuid.txt"]  # no drafts left


def test_the_uuid_is_cached_and_refreshed_on_request(tmp_path):
    path = tmp_path / "uuid.txt"
    first = get_uuid()
    replacement = uuid.uuid4()
    path.write_text(f"{replacement}\n")
    assert get_uuid() == first
    assert get_uuid(refresh=True) == replacement


def test_an_existing_file_is_read(tmp_path, monkeypatch):
    path = tmp_path / "deep" / "dir" / "worker-1.txt"
    path.parent.mkdir(parents=True)
    known = uuid.uuid4()
    path.write_text(f"  {known}\nanything after the first line\n")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(path))
    assert get_uuid() == known


def test_missing_directories_are_created(tmp_path, monkeypatch):
    path = tmp_path / "var" / "worker" / "uuid.txt"
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(path))
    assert get_uuid() == uuid.UUID(path.read_text().splitlines()[0])


def test_a_file_without_a_uuid_is_refused_clearly(tmp_path):
    (tmp_path / "uuid.txt").write_text("not a uuid\n")
    with pytest.raises(ValueError, match="uuid.txt should start with a UUID, found 'not a uuid'"):
        get_uuid()


def test_without_the_variable_the_file_is_uuid_txt_here(tmp_path, monkeypatch):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE)
    monkeypatch.chdir(tmp_path)
    assert uuid_path() == Path("uuid.txt")
    value = get_uuid()
    assert (tmp_path / "uuid.txt").read_text().startswith(str(value))


def test_producers_do_not_create_a_uuid_file(tmp_path, monkeypatch, queue):
    monkeypatch.delenv(ENVIRONMENT_VARIABLE)
    monkeypatch.chdir(tmp_path)
    assert configured_uuid() is None
    job = queue.put(Job(jobs.echo, 1))
    assert job.assigner_uuid is None
    assert not (tmp_path / "uuid.txt").exists()
    assert instanceuuid._cached is None


def test_configured_uuid_once_the_variable_is_set(tmp_path):
    assert configured_uuid() == get_uuid()
    assert (tmp_path / "uuid.txt").exists()


def test_the_tests_write_no_uuid_file_in_the_working_directory(dispatcher, tmp_path):
    assert dispatcher.uuid == uuid.UUID((tmp_path / "uuid.txt").read_text().splitlines()[0])
    assert uuid_path().parent == tmp_path
