"""``audiencefit import``: exports as they come (hand-written fixtures, no real data) into the data contracts."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import audiencefit.cli  # noqa: F401  (registers the commands)
from audiencefit.cli._app import app
from audiencefit.features.dataset import validate_dir
from audiencefit.features.errors import AudiencefitError, InputError
from audiencefit.features.importing.mapping import parse_mapping
from audiencefit.features.importing.rows import epoch_to_iso, parse_count

EXPORT_TIME = "2024-06-01T00:00:00Z"


class Result:
    """A CLI run as ``audiencefit`` ends it: audiencefit errors exit with their own code (``audiencefit.cli.main``)."""

    def __init__(self, args: list[str]) -> None:
        result = CliRunner().invoke(app, args)
        self.output = result.output
        self.exception = result.exception
        self.exit_code = result.exit_code
        if isinstance(result.exception, AudiencefitError):
            self.exit_code = result.exception.exit_code
        elif result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception


def run(*args: str) -> Result:
    return Result(["import", *args, "--export-time", EXPORT_TIME])


def post(
    post_id: str, owner: dict, *, text: str | None = "caption", likes=10, comments=1, taken=1714557600, **extra
) -> dict:
    """An Instagram GraphQL post object."""
    obj = {
        "id": post_id,
        "shortcode": f"C{post_id}",
        "taken_at_timestamp": taken,
        "edge_media_to_caption": {"edges": [{"node": {"text": text}}] if text is not None else []},
        "edge_media_preview_like": {"count": likes},
        "edge_media_to_comment": {"count": comments},
        "owner": owner,
    }
    obj.update(extra)
    return obj


ANA = {"id": "77", "username": "ana.studies", "edge_followed_by": {"count": 5400}}
BO = {"id": "88", "username": "gymbo", "edge_followed_by": {"count": 12000}, "biography": "Lifting 🏋️ Madrid"}


def instagram_posts() -> list[dict]:
    return [
        post("1", ANA, text="Nuit blanche à la BU 📚☕\n\n#étudiant #studygram #latenightstudy", likes=120),
        post("2", {"id": "77", "username": "ana.studies"}, text=None, likes=80, is_video=True, video_view_count=900),
        post("1", {**ANA, "edge_followed_by": {"count": 5450}}, text="Nuit blanche à la BU 📚☕", likes=150),
        post("3", BO, text="Leg day 💪 #gymlife #fitness", likes=300, is_paid_partnership=True),
        post("4", BO, text="Proteína vegana 🌱 #veganprotein", likes=-1),  # like count hidden
    ]


def read_out(out: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.read_parquet(out / "creators.parquet"), pl.read_parquet(out / "posts.parquet")


# --- pure parts -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1204", 1204), ("1,204", 1204), ("1 204", 1204), ("12.3k", 12300), ("1.2M", 1_200_000), ("2B", 2 * 10**9),
     ("1204.0", 1204), (" 7 ", 7), ("+5", 5), ("9223372036854775807", 2**63 - 1)],
)  # fmt: skip
def test_counts_as_exporters_write_them(text: str, expected: int) -> None:
    assert parse_count(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("-1", "negative"), ("12.5", "whole"), ("lots", "not a count"), ("1e5", "not a count"), ("", "not a count"),
     ("9223372036854775808", "too large"), ("99999999999999999999999k", "too large"), ("nan", "not a count")],
)  # fmt: skip
def test_bad_counts_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_count(text)


def test_european_grouping_is_declared_not_guessed() -> None:
    assert parse_count("1.204", thousands=".") == 1204
    assert parse_count("12,3k", thousands=".") == 12300
    with pytest.raises(ValueError, match="whole"):
        parse_count("1.204")  # with "," grouping this is 1.204, not a count


def test_epoch_units() -> None:
    assert epoch_to_iso("1714557600", "s") == "2024-05-01T10:00:00Z"
    assert epoch_to_iso("1714557600000", "ms") == "2024-05-01T10:00:00Z"
    with pytest.raises(ValueError, match="not a plausible instant"):
        epoch_to_iso("9" * 30, "s")
    with pytest.raises(ValueError, match="not a number"):
        epoch_to_iso("yesterday", "s")


def test_a_mapping_file_with_every_mistake_lists_them_all() -> None:
    document = {
        "post": {},  # misspelt
        "posts": {"file": "../../etc/passwd", "columns": {"post_id": "id", "likez": "likes"}, "extra": 1},
        "defaults": {"post_id": "x", "platfrom": "instagram"},
        "timestamp_unit": "days",
    }
    with pytest.raises(InputError) as caught:
        parse_mapping(document, "m.yaml")
    text = str(caught.value)
    for expected in (
        "unknown key 'post' (did you mean 'posts'?)",
        "posts.file: '../../etc/passwd' must be a path inside SRC",
        "'likez' is not a posts contract column (did you mean 'likes'?)",
        "posts: unknown key 'extra'",
        "defaults.post_id: an id cannot be a constant",
        "'platfrom' is not a contract column (did you mean 'platform'?)",
        "timestamp_unit: 'days'",
        "no creators",
        "'posted_at' is neither mapped nor given in 'defaults'",
    ):
        assert expected in text, text


# --- instagram ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["array", "jsonl", "directory"])
def test_instagram_posts_in_every_shape_become_valid_contract_tables(tmp_path: Path, shape: str) -> None:
    posts = instagram_posts()
    if shape == "array":
        src = tmp_path / "posts.json"
        src.write_text(json.dumps(posts, ensure_ascii=False, indent=1), encoding="utf-8")
    elif shape == "jsonl":
        src = tmp_path / "posts.jsonl"
        src.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in posts) + "\n", encoding="utf-8")
    else:  # instaloader-style: one pretty-printed {"node": …} per file, read in name order
        src = tmp_path / "export"
        (src / "ana").mkdir(parents=True)
        for i, p in enumerate(posts):
            (src / "ana" / f"2024-05-0{i + 1}_UTC.json").write_text(json.dumps({"node": p}, indent=2), "utf-8")
        (src / "ana" / "notes.txt").write_text("not a post", encoding="utf-8")
    out = tmp_path / "out"
    result = run("--from", "instagram", str(src), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "duplicate posts merged: 1" in result.output
    assert "dropped posts whose like count Instagram hides: 1" in result.output
    assert validate_dir(out).ok
    creators, posts_out = read_out(out)
    assert creators.sort("creator_id").select("creator_id", "handle", "followers", "bio").rows() == [
        ("77", "ana.studies", 5450, None),  # the newest snapshot's follower count
        ("88", "gymbo", 12000, "Lifting 🏋️ Madrid"),
    ]
    rows = {r["post_id"]: r for r in posts_out.iter_rows(named=True)}
    assert sorted(rows) == ["1", "2", "3"]
    assert rows["1"]["likes"] == 150 and rows["1"]["caption"] == "Nuit blanche à la BU 📚☕"  # the last one read
    assert rows["2"]["caption"] is None and rows["2"]["views"] == 900
    assert rows["3"]["sponsored"] is True and rows["1"]["sponsored"] is False
    assert str(rows["3"]["posted_at"]) == "2024-05-01 10:00:00+00:00"
    if shape == "directory":
        assert "skipped ana/notes.txt" in result.output


def test_owners_without_follower_counts_need_profiles_or_an_explicit_drop(tmp_path: Path) -> None:
    src = tmp_path / "posts.jsonl"
    lines = [post("1", {"id": "5", "username": "carla"}), post("2", ANA)]
    src.write_text("\n".join(json.dumps(p) for p in lines), encoding="utf-8")
    out = tmp_path / "out"
    refused = run("--from", "instagram", str(src), "--out", str(out))
    assert refused.exit_code == 2
    assert "1 of 2 creators have no follower count" in str(refused.exception or refused.output)
    assert "@carla" in str(refused.exception or refused.output)
    assert not out.exists()

    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(json.dumps({"username": "carla", "followers": "3.4k", "biography": "café"}), "utf-8")
    told = run("--from", "instagram", str(src), "--out", str(out), "--profiles", str(profiles))
    assert told.exit_code == 0, told.output
    creators, _ = read_out(out)
    assert creators.filter(pl.col("handle") == "carla")["followers"].to_list() == [3400]
    assert creators.filter(pl.col("handle") == "carla")["creator_id"].to_list() == ["5"]  # the owner's id

    dropped = tmp_path / "dropped"
    result = run("--from", "instagram", str(src), "--out", str(dropped), "--missing-followers", "drop")
    assert result.exit_code == 0, result.output
    assert "dropped creators without a follower count: 1" in result.output
    assert read_out(dropped)[1]["post_id"].to_list() == ["2"]


def test_hostile_instagram_input_is_named_by_file_line_and_field_and_nothing_is_written(tmp_path: Path) -> None:
    src = tmp_path / "posts.jsonl"
    lines = [
        json.dumps(post("1", ANA, taken="yesterday")),
        json.dumps(post("2", ANA, likes="lots")),
        json.dumps(post("3", {**ANA, "edge_followed_by": {"count": 10**30}})),
        json.dumps({k: v for k, v in post("4", ANA).items() if k != "owner"}),
        json.dumps(post("5", "bob")),  # type: ignore[arg-type]
        json.dumps({"hello": "world"}),
        json.dumps(post("6", ANA, comments=1.5)),
        json.dumps(post("7", ANA, text=["not", "text"])),  # type: ignore[arg-type]
        json.dumps(post("8", ANA, taken=4102444800 * 1000)),  # milliseconds where seconds belong
    ]
    src.write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "out"
    result = run("--from", "instagram", str(src), "--out", str(out))
    assert result.exit_code == 2
    message = str(result.exception)
    for expected in (
        "posts.jsonl: line 1, field 'taken_at_timestamp': 'yesterday' is not a number of seconds",
        "posts.jsonl: line 2, field 'edge_media_preview_like.count': 'lots' is not a count",
        "line 3, field 'owner.edge_followed_by.count'",
        "too large for a count",
        "line 4, field 'owner': missing",
        "line 5, field 'owner': expected an object, got str 'bob'",
        "line 6: not an Instagram post or profile object (keys: hello)",
        "line 7, field 'edge_media_to_comment.count': expected a whole count, got 1.5",
        "line 8, field 'edge_media_to_caption.edges[].node.text': expected text, got an array",
        "line 9, field 'taken_at_timestamp'",
    ):
        assert expected in message, message
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'\xef\xbb\xbf[{"id": 1,}]', "line 1: malformed JSON"),
        ("[\n" + json.dumps(post("1", ANA)) + ',\n{"x": NaN}]', "line 3: element 2: NaN is not a JSON number"),
        (json.dumps([post("1", ANA, text="x")]).replace('"x"', '"\\ud800"'), "lone surrogate"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("caption,likes\nhi,3\n", "line 1: not JSON"),
        (json.dumps(post("1", ANA)).encode("utf-16"), "not valid UTF-8"),
        (b'[{"id": "1", "caption": "caf\xe9"}]', "line 1: not valid UTF-8 (byte 0xe9"),
        (b'{"id": "1"}\n{"id": "2\x00"}', "line 2: a NUL byte"),
        ("", "empty"),
        ("[" + json.dumps(post("1", ANA)), "not closed"),
    ],
)
def test_malformed_files_are_refused_with_the_line(tmp_path: Path, content: str | bytes, expected: str) -> None:
    src = tmp_path / "posts.json"
    src.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    result = run("--from", "instagram", str(src), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert expected in str(result.exception), result.exception
    assert not (tmp_path / "out").exists()


def test_a_post_under_two_owners_is_a_conflict_not_a_duplicate(tmp_path: Path) -> None:
    src = tmp_path / "posts.json"
    src.write_text(json.dumps([post("1", ANA), post("1", BO)]), encoding="utf-8")
    result = run("--from", "instagram", str(src), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "post_id '1' belongs to creator_id '77' here but to '88'" in str(result.exception)


def test_timestamps_after_the_export_are_named(tmp_path: Path) -> None:
    src = tmp_path / "posts.json"
    src.write_text(json.dumps([post("1", ANA, taken=1893456000)]), encoding="utf-8")  # 2030
    result = run("--from", "instagram", str(src), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "posts.json: element 1 (line 1), field 'taken_at_timestamp': timestamp 2030-01-01" in str(result.exception)


# --- mapping ------------------------------------------------------------------------------------------------------

ONE_FILE_CSV = """post_url,author,author_name,author_followers,created,text,like_count,comment_count,plays
p1,u1,Ana,"12.3k",1714557600,"Late night study 📚 #studygram","1,204",10,
p2,u1,Ana,"12.4k",1714644000,"Meal prep for exam week
#mealprep #student",300,4,5000
p3,u2,Bo,"1.2M",1714700000,"Leg day #gymlife",2.1k,40,
p1,u1,Ana,"12.4k",1714557600,"Late night study 📚 #studygram","1,300",11,
"""

ONE_FILE_MAPPING = """# one row per post, creator fields on every row
posts:
  file: export.csv
  columns:
    post_id: post_url
    creator_id: author
    posted_at: created
    caption: text
    likes: like_count
    comments: comment_count
    views: plays
  creator_columns:
    handle: author_name
    followers: author_followers
defaults:
  platform: instagram
  sponsored: false
timestamp_unit: s
"""


def test_mapping_csv_with_creator_fields_on_post_rows(tmp_path: Path) -> None:
    src = tmp_path / "export"
    src.mkdir()
    (src / "export.csv").write_text(ONE_FILE_CSV, encoding="utf-8")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(ONE_FILE_MAPPING, encoding="utf-8")
    out = tmp_path / "out"
    result = run("--from", "mapping", str(src), "--mapping", str(mapping), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "duplicate posts merged: 1" in result.output
    creators, posts = read_out(out)
    assert creators.sort("creator_id").select("creator_id", "handle", "platform", "followers").rows() == [
        ("u1", "Ana", "instagram", 12400),
        ("u2", "Bo", "instagram", 1_200_000),
    ]
    assert posts.sort("post_id").select("post_id", "likes", "comments", "views").rows() == [
        ("p1", 1300, 11, None),
        ("p2", 300, 4, 5000),
        ("p3", 2100, 40, None),
    ]
    assert json.loads((out / "export.json").read_text())["exported_at"] == "2024-06-01T00:00:00Z"
    # The same run twice writes the same tables (determinism).
    again = tmp_path / "again"
    assert run("--from", "mapping", str(src), "--mapping", str(mapping), "--out", str(again)).exit_code == 0
    assert read_out(again)[1].equals(posts) and read_out(again)[0].equals(creators)


def test_mapping_jsonl_with_a_creators_file_and_json_mapping(tmp_path: Path) -> None:
    src = tmp_path / "export"
    src.mkdir()
    rows = [
        {"id": "a1", "uid": 1, "ts": "2024-05-01T10:00:00+02:00", "body": "Hola 👋 #estudiante", "hearts": 5,
         "replies": 0, "ad": "true"},
        {"id": "a2", "uid": 2, "ts": "2024-05-02 08:00", "body": None, "hearts": "1.1k", "replies": 3, "ad": "0"},
    ]  # fmt: skip
    (src / "posts.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    (src / "people.csv").write_text('uid,name,fans,about,cc\n1,ana,900,,es\n2,bo,"2,000",Runner,FR\n', "utf-8")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(
        json.dumps(
            {
                "posts": {
                    "file": "posts.jsonl",
                    "columns": {
                        "post_id": "id",
                        "creator_id": "uid",
                        "posted_at": "ts",
                        "caption": "body",
                        "likes": "hearts",
                        "comments": "replies",
                        "sponsored": "ad",
                    },
                },
                "creators": {
                    "file": "people.csv",
                    "columns": {
                        "creator_id": "uid",
                        "handle": "name",
                        "followers": "fans",
                        "bio": "about",
                        "country": "cc",
                    },
                },
                "defaults": {"platform": "TikTok"},
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = run("--from", "mapping", str(src), "--mapping", str(mapping), "--out", str(out))
    assert result.exit_code == 0, result.output
    creators, posts = read_out(out)
    assert creators.select("creator_id", "platform", "followers", "bio", "country").rows() == [
        ("1", "tiktok", 900, None, "ES"),
        ("2", "tiktok", 2000, "Runner", "FR"),
    ]
    assert posts.select("likes", "sponsored").rows() == [(5, True), (1100, False)]
    assert str(posts["posted_at"][0]) == "2024-05-01 08:00:00+00:00"


def test_mapping_problems_name_the_source_row_and_column(tmp_path: Path) -> None:
    src = tmp_path / "export"
    src.mkdir()
    bad = ONE_FILE_CSV.replace('"1,204"', "many").replace("1714700000", "1714700000000")
    (src / "export.csv").write_text(bad + "p9,,Nobody,5,1714557600,x,1,1,\n", encoding="utf-8")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(ONE_FILE_MAPPING, encoding="utf-8")
    result = run("--from", "mapping", str(src), "--mapping", str(mapping), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    message = str(result.exception)
    assert "export.csv: row 1, field 'like_count': 'many' is not a count" in message, message
    assert "export.csv: row 3, field 'created': '1714700000000' seconds since 1970 is not a plausible" in message
    assert not (tmp_path / "out").exists()

    mapping.write_text(ONE_FILE_MAPPING.replace("text\n", "txt\n"), encoding="utf-8")
    result = run("--from", "mapping", str(src), "--mapping", str(mapping), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "source column 'txt' is not in export.csv (did you mean 'text'?)" in str(result.exception)

    mapping.write_text("posts: [unclosed", encoding="utf-8")
    result = run("--from", "mapping", str(src), "--mapping", str(mapping), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "malformed YAML" in str(result.exception)


def test_mapping_files_cannot_reach_outside_src(tmp_path: Path) -> None:
    src = tmp_path / "export"
    src.mkdir()
    (tmp_path / "secret.csv").write_text("a\n1\n", encoding="utf-8")
    (src / "link.csv").symlink_to(tmp_path / "secret.csv")
    mapping = tmp_path / "mapping.yaml"
    for file, expected in (("../secret.csv", "must be a path inside SRC"), ("link.csv", "leads outside SRC")):
        mapping.write_text(ONE_FILE_MAPPING.replace("file: export.csv", f"file: {file}"), encoding="utf-8")
        result = run("--from", "mapping", str(src), "--mapping", str(mapping), "--out", str(tmp_path / "out"))
        assert result.exit_code == 2
        assert expected in str(result.exception), result.exception


# --- the command --------------------------------------------------------------------------------------------------


def test_out_is_refused_when_unsafe_and_replaced_only_with_force(tmp_path: Path) -> None:
    src = tmp_path / "posts.json"
    src.write_text(json.dumps(instagram_posts()), encoding="utf-8")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine", encoding="utf-8")
    a_file = tmp_path / "file"
    a_file.write_text("x", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(taken)
    for out, expected in (
        (taken, "exists and is not empty"),
        (a_file, "is not a directory"),
        (link, "symbolic link"),
        (tmp_path, "not empty"),
        (tmp_path / "sub" / ".." / "..", "overlaps the source"),
    ):
        result = run("--from", "instagram", str(src), "--out", str(out))
        assert result.exit_code == 2, (out, result.output)
        assert expected in str(result.exception), result.exception
    assert (taken / "keep.txt").read_text() == "mine"
    inside = tmp_path / "dir"
    inside.mkdir()
    (inside / "posts.json").write_text(json.dumps(instagram_posts()), encoding="utf-8")
    result = run("--from", "instagram", str(inside), "--out", str(inside / "out"))
    assert result.exit_code == 2 and "overlaps the source" in str(result.exception)
    forced = run("--from", "instagram", str(src), "--out", str(taken), "--force")
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in taken.iterdir()) == ["creators.parquet", "export.json", "posts.parquet"]


def test_cli_help_and_flag_errors() -> None:
    shown = CliRunner().invoke(app, ["import", "--help"], terminal_width=200)
    assert shown.exit_code == 0
    for flag in ("--from", "--out", "--mapping", "--profiles", "--missing-followers", "--export-time", "--force"):
        assert flag in shown.output
    assert Result(["import", "--from", "csv", "x", "--out", "y"]).exit_code == 2
    no_mapping = Result(["import", "--from", "mapping", "x", "--out", "y"])
    assert no_mapping.exit_code == 2 and "--mapping FILE" in str(no_mapping.exception)
    missing = Result(["import", "--from", "instagram", "/nonexistent/src", "--out", "y"])
    assert missing.exit_code == 2 and "no such file or directory" in str(missing.exception)


def test_the_progress_bar_changes_nothing(tmp_path: Path) -> None:
    from audiencefit.features.importing.instagram import import_instagram

    src = tmp_path / "posts.json"
    src.write_text(json.dumps(instagram_posts()), encoding="utf-8")
    quiet = import_instagram(src, None)
    shown = import_instagram(src, None, progress=True)
    assert shown.assembled.posts.equals(quiet.assembled.posts) and shown.dropped == quiet.dropped


def test_flat_scraper_posts_and_profiles(tmp_path: Path) -> None:
    """The flat shape of Apify's Instagram scraper: ISO timestamps, counts and owner fields at the top level."""
    posts = [
        {"id": "9001", "shortCode": "Dq1", "caption": "Lecture du soir 📖 #bookstagram", "timestamp":
         "2024-05-01T10:00:00.000Z", "likesCount": 41, "commentsCount": 2, "ownerId": "501",
         "ownerUsername": "lea.lit", "isSponsored": False},
        {"id": "9002", "shortCode": "Dq2", "caption": "Reel 🎬", "timestamp": "2024-05-02T10:00:00.000Z",
         "likesCount": 90, "commentsCount": 7, "videoViewCount": 2300, "ownerId": "501", "ownerUsername": "lea.lit"},
    ]  # fmt: skip
    src = tmp_path / "dataset.json"
    src.write_text(json.dumps(posts, ensure_ascii=False), encoding="utf-8")
    profiles = tmp_path / "profiles.json"
    profiles.write_text(
        json.dumps([{"id": "501", "username": "lea.lit", "followersCount": 2400, "biography": "Livres"}]), "utf-8"
    )
    out = tmp_path / "out"
    result = run("--from", "instagram", str(src), "--out", str(out), "--profiles", str(profiles))
    assert result.exit_code == 0, (result.output, result.exception)
    creators, posts_out = read_out(out)
    assert creators.select("creator_id", "handle", "followers", "bio").rows() == [("501", "lea.lit", 2400, "Livres")]
    assert posts_out.select("post_id", "likes", "views").rows() == [("9001", 41, None), ("9002", 90, 2300)]
    assert str(posts_out["posted_at"][0]) == "2024-05-01 10:00:00+00:00"
