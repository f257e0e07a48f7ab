"""`kgpt2.data.poetry` on the Tang (shi) and Song ci fixtures."""

import json
import shutil

import pytest

import kgpt2
from kgpt2.data import DataError
from kgpt2.data.poetry import read_poems


@pytest.fixture(scope="module")
def tang_records(fixtures_dir):
    return json.loads((fixtures_dir / "tang" / "poet.tang.0.json").read_text("utf-8"))


def texts_of(dataset):
    return [s.decode() for batch in dataset for s in batch.numpy()]


def test_tang_folder_gives_every_poem_simplified(fixtures_dir, tang_records):
    data = kgpt2.data.poetry(fixtures_dir / "tang", batch_size=16, shuffle=False)
    poems = texts_of(data)
    with_text = [r for r in tang_records if "".join(r["paragraphs"]).strip()]
    assert len(poems) == len(with_text) == 60
    # 帝京篇十首 一, converted from Traditional (壯, 綺, 離, 飛) to Simplified.
    assert poems[0] == (
        "秦川雄帝宅，函谷壮皇居。绮殿千寻起，离宫百雉余。连甍遥接汉，飞观迥凌虚。云日隐层阙，风烟出绮疎。"
    )


def test_options_title_join_traditional_limit(fixtures_dir, tang_records):
    poems = read_poems(
        fixtures_dir / "tang" / "poet.tang.0.json",
        include_title=True, join="\n", limit=3, to_simplified=False,
    )
    first = tang_records[0]
    assert len(poems) == 3
    assert poems[0] == first["title"] + "\n" + "\n".join(first["paragraphs"])


def test_author_filter_matches_either_script(fixtures_dir, tmp_path):
    assert len(read_poems(fixtures_dir / "tang", authors="太宗皇帝")) == 60
    with pytest.raises(DataError, match="none of the 60 records read is a poem by 李白"):
        read_poems(fixtures_dir / "tang", authors="李白")
    records = [
        {"author": "王維", "paragraphs": ["空山不見人，", "但聞人語響。"], "title": "鹿柴", "id": "1"},
        {"author": "李白", "paragraphs": ["床前明月光，"], "title": "靜夜思", "id": "2"},
    ]
    (tmp_path / "poet.tang.0.json").write_text(json.dumps(records, ensure_ascii=False), "utf-8")
    for name in ("王维", "王維", ["杜甫", "王维"]):
        assert read_poems(tmp_path, authors=name) == ["空山不见人，但闻人语响。"]


def test_song_ci_uses_rhythmic_as_title(fixtures_dir):
    poems = read_poems(fixtures_dir / "song_ci", include_title=True, join="\n")
    assert len(poems) == 7
    assert poems[0].startswith("水调歌头\n明月几时有？把酒问青天。\n")
    by_su_shi = read_poems(fixtures_dir / "song_ci", authors="苏轼")
    assert [p[:4] for p in by_su_shi] == ["明月几时", "十年生死"]
    data = kgpt2.data.poetry(fixtures_dir / "song_ci", batch_size=4)
    assert sorted(texts_of(data)) == sorted(read_poems(fixtures_dir / "song_ci"))


def test_tang_folder_skips_song_shi_and_author_files(fixtures_dir, tmp_path):
    shutil.copy(fixtures_dir / "tang" / "poet.tang.0.json", tmp_path / "poet.tang.0.json")
    song = [{"author": "宋人", "paragraphs": ["不该出现。"], "title": "宋诗", "id": "x"}]
    (tmp_path / "poet.song.0.json").write_text(json.dumps(song, ensure_ascii=False), "utf-8")
    (tmp_path / "authors.tang.json").write_text('[{"name": "x", "desc": "y"}]', "utf-8")
    poems = read_poems(tmp_path)
    assert len(poems) == 60 and "不该出现。" not in poems
    assert read_poems(tmp_path, files="poet.song.*.json") == ["不该出现。"]


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json' does not exist"):
        kgpt2.data.poetry(tmp_path / "nowhere.json")


def test_empty_directory(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        kgpt2.data.poetry(tmp_path)


def test_directory_without_matching_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="no file in .* matches poet.tang.\\*.json or .*notes.txt"):
        kgpt2.data.poetry(tmp_path)
    with pytest.raises(DataError, match="matches ci.song.\\*.json"):
        kgpt2.data.poetry(tmp_path, files="ci.song.*.json")


def test_malformed_json_names_file_and_position(tmp_path):
    bad = tmp_path / "poet.tang.0.json"
    bad.write_text('[\n  {"author": "a",\n   "paragraphs": ["x"]\n   "title": "t"}\n]', "utf-8")
    with pytest.raises(DataError, match="poet.tang.0.json: malformed JSON at line 4, column 4"):
        kgpt2.data.poetry(tmp_path)


def test_record_without_paragraphs_is_named(tmp_path):
    bad = tmp_path / "ci.song.0.json"
    bad.write_text(json.dumps([
        {"author": "a", "paragraphs": ["一。"], "rhythmic": "b"},
        {"author": "a", "content": "一。", "rhythmic": "b"},
    ]), "utf-8")
    no_paragraphs = "ci.song.0.json: record 1 has no 'paragraphs' \\(its keys: author, content, rhythmic\\)"
    with pytest.raises(DataError, match=no_paragraphs):
        kgpt2.data.poetry(bad)
    bad.write_text(json.dumps([{"author": "a", "paragraphs": "一。"}]), "utf-8")
    with pytest.raises(DataError, match="record 0: 'paragraphs' must be a list of strings"):
        kgpt2.data.poetry(bad)
    bad.write_text(json.dumps({"author": "a"}), "utf-8")
    with pytest.raises(DataError, match="expected a JSON array of poem records, got a dict"):
        kgpt2.data.poetry(bad)


def test_only_empty_poems_is_an_error(tmp_path):
    bad = tmp_path / "poet.tang.0.json"
    bad.write_text(json.dumps([{"author": "a", "paragraphs": [], "title": "t", "id": "1"}]), "utf-8")
    with pytest.raises(DataError, match="none of the 1 records read is a poem with any text"):
        kgpt2.data.poetry(tmp_path)
