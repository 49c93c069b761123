import pytest

from telemetry_shared.files import FileTooLarge, read_bounded, read_bounded_text


def test_a_file_of_exactly_the_limit_is_read_one_byte_more_is_not(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, 100) == b"x" * 100
    with pytest.raises(FileTooLarge, match="larger than 99 bytes"):
        read_bounded(path, 99)


def test_a_device_that_never_ends_is_cut_at_the_limit():
    with pytest.raises(FileTooLarge, match="larger than 1 MB"):
        read_bounded("/dev/zero", 1024 * 1024)


def test_text_that_is_not_utf8_and_a_missing_file_raise_what_open_and_decode_raise(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UnicodeDecodeError):
        read_bounded_text(path, 10)
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing", 10)
