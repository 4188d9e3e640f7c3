"""``read_json_object``: the one checked JSON-object read of the package loader and the diffusers converter."""
import pytest

from transvae.utils.errors import UserInputError
from transvae.utils.files import read_json_object


def test_reads_an_object(tmp_path):
    p = tmp_path / 'c.json'
    p.write_text('{"a": [1, 2.5], "b": {"c": null}}', encoding='utf-8')
    assert read_json_object(str(p)) == {'a': [1, 2.5], 'b': {'c': None}}


@pytest.mark.parametrize('raw, reason', [
    (b'{"a": 1,', 'is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 9 (char 8)'),
    (b'\xff\xfe{}', "is not valid JSON: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
    (b'[1, 2]', 'is not a JSON object'),
    (b'"text"', 'is not a JSON object'),
])
def test_malformed_files_raise_the_callers_error(tmp_path, raw, reason):
    p = tmp_path / 'c.json'
    p.write_bytes(raw)
    with pytest.raises(UserInputError) as e:
        read_json_object(str(p), UserInputError)
    assert str(e.value) == f'{p} {reason}'
    with pytest.raises(ValueError):  # the default error class
        read_json_object(str(p))
