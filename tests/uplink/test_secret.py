from pathlib import Path

import pytest

from gateway.errors import SecretFileError
from gateway.uplink.secret import load_secret


def _secret_file(tmp_path: Path, content: bytes, mode: int) -> Path:
    path = tmp_path / "platform.secret"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_private_file_is_read_without_surrounding_whitespace(tmp_path: Path) -> None:
    assert load_secret(_secret_file(tmp_path, b"abc123\n", 0o600)) == b"abc123"
    assert load_secret(_secret_file(tmp_path, b"abc123", 0o400)) == b"abc123"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o666])
def test_file_open_to_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = _secret_file(tmp_path, b"abc123\n", mode)
    with pytest.raises(SecretFileError) as info:
        load_secret(path)
    message = str(info.value)
    assert str(path) in message
    assert f"chmod 600 {path}" in message
    assert "abc123" not in message


def test_missing_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "nope.secret"
    with pytest.raises(SecretFileError, match=f"{path} does not exist.*chmod 600 {path}"):
        load_secret(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = _secret_file(tmp_path, b" \n", 0o600)
    with pytest.raises(SecretFileError, match="is empty"):
        load_secret(path)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "secret.d"
    directory.mkdir(mode=0o700)
    with pytest.raises(SecretFileError, match="not a regular file"):
        load_secret(directory)
