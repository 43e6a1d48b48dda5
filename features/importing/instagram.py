"""``audiencefit import --from instagram``: the post JSON of Instagram's web API and of the common scrapers.

Accepted, in any mix, as one JSON array, JSON Lines, single objects (one pretty-printed object per file, as
instaloader writes them) or a directory of such files (``.json``, ``.jsonl``, ``.ndjson``, read in name order):

- GraphQL post objects: ``id``, ``shortcode``, ``edge_media_to_caption``, ``edge_media_preview_like`` (or
  ``edge_liked_by``), ``edge_media_to_comment`` (or ``edge_media_preview_comment``), ``taken_at_timestamp``,
  ``owner`` {``id``, ``username``, maybe ``edge_followed_by``, ``biography``}, ``video_view_count``,
  ``is_paid_partnership``; also wrapped as ``{"node": …}`` (instaloader), ``{"graphql": {"shortcode_media": …}}``
  or ``{"data": {"shortcode_media": …}}``;
- profile objects (``{"graphql": {"user": …}}``, ``{"data": {"user": …}}``, instaloader's profile ``node``, or a
  user with ``username`` and ``edge_followed_by``): the creator's followers and bio, plus the posts in its
  ``edge_owner_to_timeline_media``;
- the mobile API's items (``pk``, ``code``, ``taken_at``, ``caption`` {``text``}, ``like_count``,
  ``comment_count``, ``user`` {``pk``, ``username``}), alone or in ``{"items": […]}``;
- flat scraper posts (Apify's Instagram scraper): ``id``, ``shortCode``, ``caption``, ``timestamp`` (ISO 8601),
  ``likesCount``, ``commentsCount``, ``videoViewCount``, ``ownerId``, ``ownerUsername``.

Creators come from the posts' owners and from profile objects (``--profiles`` adds profile files). Follower counts
are required by the contract; creators without one are an error naming them unless ``missing_followers="drop"``.
Posts whose like count Instagram hides (-1) are dropped and counted. Duplicate posts (the same id in several
snapshots) are merged: the last one read wins (see ``audiencefit.features.importing.rows.merge_duplicates``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from audiencefit.features.errors import InputError, Issue
from audiencefit.features.export import TimeWindow
from audiencefit.features.importing.rows import (
    AT,
    CREATOR_COLUMNS,
    FILE,
    POST_COLUMNS,
    Assembled,
    assemble,
    creators_from_rows,
    epoch_to_iso,
    parse_count,
    source_issue,
    text_frame,
)
from audiencefit.features.io import MAX_PARSE_ISSUES
from audiencefit.features.untrusted_json import finite_float, refuse_constant

if TYPE_CHECKING:
    from rich.progress import Progress

SUFFIXES = (".json", ".jsonl", ".ndjson")
MAX_FILE_BYTES = 2 << 30
MISSING_FOLLOWERS = ("error", "drop")
HIDDEN_LIKES = "posts whose like count Instagram hides"
NO_FOLLOWERS = "creators without a follower count"
NO_FOLLOWERS_POSTS = "posts of creators without a follower count"
_HANDLE = "__handle"  # a post row's owner username, until owners stated by username alone get their id
_POST_FIELDS = {
    "post_id": "id",
    "creator_id": "owner.id",
    "posted_at": "taken_at_timestamp",
    "caption": "edge_media_to_caption",
    "likes": "edge_media_preview_like.count",
    "comments": "edge_media_to_comment.count",
    "views": "video_view_count",
    "sponsored": "is_paid_partnership",
}
_CREATOR_FIELDS = {
    "creator_id": "owner.id",
    "handle": "owner.username",
    "bio": "owner.biography",
    "followers": "owner.edge_followed_by.count",
    "following": "owner.edge_follow.count",
    "post_count": "owner.edge_owner_to_timeline_media.count",
    "platform": "(instagram)",
}


class _BadValue(ValueError):  # noqa: N818 (a value, not a failure of the program)
    """A value that does not fit, with the source field it was read from."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


@dataclass
class Collected:
    """Post and creator rows read from the export, as text, each with its source file and place."""

    posts: list[dict[str, str | None]] = field(default_factory=list)
    creators: list[dict[str, str | None]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    hidden_likes: int = 0


# --- reading files ------------------------------------------------------------------------------------------------


def list_files(src: Path) -> tuple[list[Path], list[str]]:
    """The JSON files of ``src`` (a file, or a directory walked in name order) and the names skipped, with why.

    Symbolic links are skipped (an export directory holds files, and a link could lead anywhere)."""
    if src.is_symlink():
        raise InputError(f"SRC {src}: is a symbolic link; give the file or directory itself")
    if src.is_file():
        return [src], []
    if not src.is_dir():
        raise InputError(f"SRC {src}: no such file or directory")
    files: list[Path] = []
    skipped: list[str] = []
    for directory, subdirs, names in os.walk(src):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and not Path(directory, d).is_symlink())
        for name in sorted(names):
            path = Path(directory, name)
            shown = str(path.relative_to(src))
            if name.startswith("."):
                continue
            if path.is_symlink():
                skipped.append(f"{shown} (a symbolic link)")
            elif path.suffix.lower() in SUFFIXES:
                files.append(path)
            elif name.lower().endswith((".json.xz", ".json.gz", ".jsonl.gz")):
                skipped.append(f"{shown} (compressed: decompress it first)")
            else:
                skipped.append(f"{shown} (not .json, .jsonl or .ndjson)")
    if not files:
        raise InputError(f"SRC {src}: no .json, .jsonl or .ndjson files in it")
    return files, skipped


_DECODER = json.JSONDecoder(parse_constant=refuse_constant, parse_float=finite_float)


def read_objects(path: Path, shown: str) -> Iterator[tuple[str, Any]]:
    """(place, value) for every JSON value of the file: the elements of an array, the lines of JSON Lines, or the
    one object of a file. InputError naming the file and line for bytes that are not UTF-8 JSON."""

    def fail(problem: str) -> InputError:
        return InputError([Issue(table="posts", file=shown, problem=problem)])

    size = path.stat().st_size
    if size == 0:
        raise fail("file is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise fail(f"{size:,} bytes; split exports larger than {MAX_FILE_BYTES:,} bytes into several files")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = data.count(b"\n", 0, exc.start) + 1
        raise fail(
            f"line {bad_line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); export "
            "the file as UTF-8"
        ) from exc
    if "\x00" in text:
        raise fail(f"line {text.count(chr(10), 0, text.index(chr(0))) + 1}: a NUL byte; binary data, not JSON text")
    stripped = text.lstrip()
    if not stripped:
        raise fail("file holds only whitespace: no JSON")
    if stripped[0] == "[":
        yield from _array(text, fail)
        return
    if stripped[0] != "{":
        raise fail(f"line 1: not JSON: it starts with {stripped[:20]!r}; expected an object or an array of objects")
    whole = _decode_all(text) if path.suffix.lower() == ".json" else None
    if whole is not None:
        yield "line 1", whole
        return
    problems: list[str] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = _decode(line)
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
            if len(problems) >= MAX_PARSE_ISSUES:
                break
            continue
        if not problems:
            yield f"line {number}", value
    if problems:
        raise InputError([Issue(table="posts", file=shown, problem=p) for p in problems])


def _decode_all(text: str) -> Any | None:
    """The file as one JSON value, or None when it is not exactly one (then it is read as JSON Lines)."""
    try:
        value, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip()))
    except (ValueError, RecursionError):
        return None
    if text[end:].strip():
        return None
    return value


def _decode(text: str) -> Any:
    """One JSON value, strictly (no NaN, no overflowing numbers, bounded nesting, no lone surrogates)."""
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply (a post object is a few levels deep)") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    return value


def _array(text: str, fail: Any) -> Iterator[tuple[str, Any]]:
    """The elements of one JSON array with the line each starts on (so a problem can name it)."""
    position = text.index("[") + 1
    number = 0
    counted, line = 0, 1  # lines are counted onwards from the last element, not from the start each time

    def line_at(at: int) -> int:
        nonlocal counted, line
        line += text.count("\n", counted, at)
        counted = at
        return line

    while True:
        position = _skip_space(text, position)
        if position >= len(text):
            raise fail(f"line {line_at(len(text))}: the JSON array is not closed (no ']')")
        if text[position] == "]":
            if text[position + 1 :].strip():
                raise fail(f"line {line_at(position)}: text after the end of the JSON array")
            return
        if number:
            if text[position] != ",":
                raise fail(f"line {line_at(position)}: expected ',' or ']' between array elements")
            position = _skip_space(text, position + 1)
        number += 1
        start = line_at(position)
        try:
            value, position = _DECODER.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise fail(f"line {exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno})") from None
        except RecursionError:
            raise fail(f"line {start}: element {number} is nested too deeply (a post is a few levels deep)") from None
        except ValueError as exc:
            raise fail(f"line {start}: element {number}: {exc}") from None
        yield f"element {number} (line {start})", value


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


# --- reading objects ----------------------------------------------------------------------------------------------


def _get(obj: Any, path: str) -> Any:
    """``obj["a"]["b"]`` for ``path`` "a.b"; None when any step is missing or not an object."""
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _first(obj: dict[str, Any], *paths: str) -> tuple[str, Any]:
    """The first of ``paths`` present (not null) in ``obj``, with its path; (paths[0], None) when none is."""
    for path in paths:
        value = _get(obj, path)
        if value is not None:
            return path, value
    return paths[0], None


def _id(value: Any, field_: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _BadValue(field_, f"expected an id (text or a whole number), got {_kind(value)}")
    text = str(value).strip()
    if not text:
        raise _BadValue(field_, "empty id")
    _check_unicode(text, field_)
    return text


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (missing or null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 40 else shown[:37] + '…'}"


def _count(value: Any, field_: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _BadValue(field_, f"expected a count, got {_kind(value)}")
    if isinstance(value, float) and not value.is_integer():
        raise _BadValue(field_, f"expected a whole count, got {value!r}")
    try:
        return parse_count(str(int(value)) if isinstance(value, float) else str(value))
    except ValueError as exc:
        raise _BadValue(field_, str(exc)) from None


def _text(value: Any, field_: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadValue(field_, f"expected text, got {_kind(value)}")
    _check_unicode(value, field_)
    return value


def _check_unicode(value: str, field_: str) -> None:
    """JSON's "\\ud800" escapes parse to a lone surrogate, which is no text (and no parquet string). Only the
    strings the import keeps are checked: walking every value of every object cost more than the whole import."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _BadValue(field_, "holds a lone surrogate (\\ud800-\\udfff), which is no text") from None


def _is_post(obj: dict[str, Any]) -> bool:
    return (
        any(k in obj for k in ("shortcode", "shortCode", "taken_at_timestamp", "edge_media_to_caption"))
        or ("taken_at" in obj and any(k in obj for k in ("code", "pk", "like_count")))
        or ("timestamp" in obj and any(k in obj for k in ("ownerUsername", "ownerId")))
    )


def _is_profile(obj: dict[str, Any]) -> bool:
    return "username" in obj and not _is_post(obj)


def _unwrap(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """("post" | "profile", object) found in one top-level JSON object."""
    for path in ("graphql.shortcode_media", "data.shortcode_media", "data.xdt_shortcode_media"):
        inner = _get(obj, path)
        if isinstance(inner, dict):
            return [("post", inner)]
    for path in ("graphql.user", "data.user", "user"):
        inner = _get(obj, path)
        if isinstance(inner, dict) and not _is_post(obj):
            return [("profile", inner)]
    node = obj.get("node")
    if isinstance(node, dict) and not _is_post(obj):
        return _unwrap(node)
    items = obj.get("items")
    if isinstance(items, list) and not _is_post(obj):
        return [("post", item) for item in items if isinstance(item, dict)]
    if _is_post(obj):
        return [("post", obj)]
    if _is_profile(obj):
        return [("profile", obj)]
    return []


def _owner(post: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    for key in ("owner", "user"):
        value = post.get(key)
        if isinstance(value, dict):
            return key, value
    if "owner" in post or "user" in post:
        raise _BadValue("owner", f"expected an object, got {_kind(post.get('owner', post.get('user')))}")
    if "ownerId" in post or "ownerUsername" in post:  # flat scraper output (Apify's Instagram scraper)
        return "owner", {"id": post.get("ownerId"), "username": post.get("ownerUsername")}
    raise _BadValue("owner", "missing: a post needs its owner (id and username)")


def profile_row(user: dict[str, Any], prefix: str = "") -> dict[str, str | None]:
    """A creator text row (creator_id may be only a username) from an owner or profile object."""
    ident = user.get("id", user.get("pk", user.get("pk_id")))
    username = _text(user.get("username"), f"{prefix}username")
    row: dict[str, str | None] = {
        "creator_id": _id(ident, f"{prefix}id") if ident is not None else None,
        "handle": username.strip().lstrip("@") if username else None,
        "platform": "instagram",
        "bio": _text(user.get("biography", user.get("bio")), f"{prefix}biography"),
    }
    for column, paths in (
        ("followers", ("edge_followed_by.count", "follower_count", "followers_count", "followersCount", "followers")),
        ("following", ("edge_follow.count", "following_count", "follows_count", "followsCount", "following")),
        ("post_count", ("edge_owner_to_timeline_media.count", "media_count", "posts_count", "postsCount")),
    ):
        path, value = _first(user, *paths)
        row[column] = None if value is None else str(_count(value, prefix + path))
    if row["creator_id"] is None and row["handle"] is None:
        raise _BadValue(f"{prefix}id", "an owner or profile needs an id or a username")
    return row


def post_row(post: dict[str, Any]) -> tuple[dict[str, str | None], dict[str, str | None], bool]:
    """(post text row, owner creator row, likes hidden) from one GraphQL or mobile-API post object."""
    key, owner = _owner(post)
    creator = profile_row(owner, f"{key}.")
    path, ident = _first(post, "id", "pk", "shortcode", "code", "shortCode")
    if ident is None:
        raise _BadValue("id", "missing: a post needs its id (or shortcode)")
    post_id = _id(ident, path)
    path, taken = _first(post, "taken_at_timestamp", "taken_at", "timestamp")
    if taken is None:
        raise _BadValue(path, "missing: a post needs its publication time")
    if isinstance(taken, bool) or not isinstance(taken, int | float | str):
        raise _BadValue(path, f"expected seconds since 1970, got {_kind(taken)}")
    if path == "timestamp" and isinstance(taken, str) and not taken.strip().isdigit():
        posted_at = _text(taken, path) or ""  # ISO 8601 text (flat scrapers); the contract check parses it
    else:
        try:
            posted_at = epoch_to_iso(str(taken), "s")
        except ValueError as exc:
            raise _BadValue(path, str(exc)) from None
    path, likes = _first(
        post, "edge_media_preview_like.count", "edge_liked_by.count", "like_count", "likesCount", "likes"
    )
    if likes is None:
        raise _BadValue(path, "missing: a post needs its like count")
    hidden = isinstance(likes, int) and not isinstance(likes, bool) and likes == -1
    like_count = 0 if hidden else _count(likes, path)
    path, comments = _first(
        post,
        "edge_media_to_comment.count",
        "edge_media_preview_comment.count",
        "comment_count",
        "commentsCount",
        "comments",
    )
    if comments is None:
        if post.get("comments_disabled") is not True:
            raise _BadValue(path, "missing: a post needs its comment count")
        comments = 0
    comment_count = _count(comments, path)
    path, views = _first(
        post, "video_view_count", "video_play_count", "play_count", "view_count", "videoViewCount", "videoPlayCount"
    )
    view_count = None if views is None else str(_count(views, path))
    sponsored_path, sponsored = _first(post, "is_paid_partnership", "isSponsored", "paidPartnership")
    if sponsored is not None and not isinstance(sponsored, bool):
        raise _BadValue(sponsored_path, f"expected true or false, got {_kind(sponsored)}")
    sponsors = _get(post, "edge_media_to_sponsor_user.edges")
    row: dict[str, str | None] = {
        "post_id": post_id,
        "creator_id": creator["creator_id"],
        _HANDLE: creator["handle"],
        "posted_at": posted_at,
        "caption": _caption(post),
        "likes": str(like_count),
        "comments": str(comment_count),
        "views": view_count,
        "sponsored": "true" if sponsored is True or (isinstance(sponsors, list) and sponsors) else "false",
    }
    return row, creator, hidden


def _caption(post: dict[str, Any]) -> str | None:
    edges = _get(post, "edge_media_to_caption.edges")
    if edges is not None:
        if not isinstance(edges, list):
            raise _BadValue("edge_media_to_caption.edges", f"expected an array, got {_kind(edges)}")
        texts = [_text(_get(e, "node.text"), "edge_media_to_caption.edges[].node.text") for e in edges]
        return next((t for t in texts if t), None)
    caption = post.get("caption")
    if isinstance(caption, dict):
        return _text(caption.get("text"), "caption.text")
    return _text(caption, "caption")


def collect(objects: Iterator[tuple[str, str, Any]], out: Collected) -> None:
    """Rows from (file, place, value) triples into ``out``; each unusable object is an issue with its place."""
    for file, place, value in objects:
        values = value if isinstance(value, list) else [value]
        for index, obj in enumerate(values, start=1):
            at = place if len(values) == 1 else f"{place}, element {index}"
            if not isinstance(obj, dict):
                out.issues.append(
                    Issue(table="posts", file=file, problem=f"{at}: expected a JSON object, got {_kind(obj)}")
                )
                continue
            found = _unwrap(obj)
            if not found:
                keys = ", ".join(sorted(obj)[:8]) or "none"
                out.issues.append(
                    Issue(
                        table="posts",
                        file=file,
                        problem=(
                            f"{at}: not an Instagram post or profile object (keys: {keys}); expected e.g. "
                            "shortcode, taken_at_timestamp, edge_media_to_caption and owner"
                        ),
                    )
                )
                continue
            for kind, item in found:
                _collect_one(kind, item, file, at, out)
            if len(out.issues) >= MAX_PARSE_ISSUES * 5:
                return


def _collect_one(kind: str, item: dict[str, Any], file: str, at: str, out: Collected) -> None:
    where = {FILE: file, AT: at}
    try:
        if kind == "post":
            post, creator, hidden = post_row(item)
            out.creators.append({**creator, **where})
            if hidden:
                out.hidden_likes += 1
            else:
                out.posts.append({**post, **where})
            return
        out.creators.append({**profile_row(item), **where})
        edges = _get(item, "edge_owner_to_timeline_media.edges")
        for n, edge in enumerate(edges if isinstance(edges, list) else [], start=1):
            node = edge.get("node") if isinstance(edge, dict) else None
            if isinstance(node, dict):
                node = {"owner": {k: item.get(k) for k in ("id", "username")}, **node}
                _collect_one("post", node, file, f"{at}, timeline post {n}", out)
    except _BadValue as exc:
        out.issues.append(source_issue("posts" if kind == "post" else "creators", file, at, exc.field, str(exc)))


def _unify_creator_ids(collected: Collected) -> None:
    """Owners stated by username alone get the id another object states for that username (so one creator is one
    row); a username no object gives an id for keeps the username as its id."""
    ids: dict[str, str] = {}
    for row in collected.creators:
        if row["creator_id"] is not None and row["handle"] is not None:
            ids.setdefault(row["handle"].lower(), row["creator_id"])
    for row in collected.creators:
        if row["creator_id"] is None and row["handle"] is not None:
            row["creator_id"] = ids.get(row["handle"].lower(), row["handle"])
    for post in collected.posts:
        handle = post.get(_HANDLE)
        if post["creator_id"] is None and handle is not None:
            post["creator_id"] = ids.get(handle.lower(), handle)


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress bar over the bytes of the files read (on stderr), or None."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        yield bar


@dataclass(frozen=True)
class InstagramImport:
    assembled: Assembled
    files: list[Path]
    skipped: list[str]
    dropped: dict[str, int]


def import_instagram(
    src: Path,
    window: TimeWindow | None,
    *,
    profiles: Sequence[Path] = (),
    missing_followers: str = "error",
    progress: bool = False,
) -> InstagramImport:
    """Read Instagram post JSON at ``src`` (a file or a directory) and profile files, and return contract tables.

    InputError with every problem (file, line or element, field) when anything does not fit; nothing is returned
    half-read."""
    if missing_followers not in MISSING_FOLLOWERS:
        raise InputError(f"--missing-followers {missing_followers!r}: use one of {', '.join(MISSING_FOLLOWERS)}")
    files, skipped = list_files(src)
    profile_files: list[Path] = []
    for path in profiles:
        found, more = list_files(path)
        profile_files += found
        skipped += more
    collected = Collected()
    problems: list[Issue] = []
    every = [*files, *profile_files]
    with _progress(progress) as bar:
        task = bar.add_task("reading post JSON", total=sum(p.stat().st_size for p in every)) if bar else None
        for path in every:
            shown = str(path.relative_to(src)) if src.is_dir() and path.is_relative_to(src) else path.name
            try:
                collect(((shown, place, value) for place, value in read_objects(path, shown)), collected)
            except InputError as exc:
                problems += exc.issues
            if bar is not None and task is not None:
                bar.advance(task, path.stat().st_size)
    problems += collected.issues
    if problems:
        raise InputError(problems)
    _unify_creator_ids(collected)
    creators = creators_from_rows(text_frame(collected.creators, ["creator_id", *CREATOR_COLUMNS, FILE, AT]))
    posts = text_frame(collected.posts, [*POST_COLUMNS, FILE, AT])
    dropped = {HIDDEN_LIKES: collected.hidden_likes} if collected.hidden_likes else {}
    unknown = creators.filter(pl.col("followers").is_null())
    if unknown.height:
        if missing_followers == "error":
            names = ", ".join(
                f"@{h}" if h else str(c) for c, h in unknown.select("creator_id", "handle").head(10).rows()
            )
            rest = f" and {unknown.height - 10} more" if unknown.height > 10 else ""
            raise InputError(
                f"{unknown.height} of {creators.height} creators have no follower count in the export ({names}{rest}); "
                "the posts' owner objects do not carry edge_followed_by. Give their profiles with --profiles FILE "
                '(Instagram profile JSON, or JSON Lines of {"username": …, "followers": …}), or leave them out '
                "with --missing-followers drop"
            )
        gone = unknown["creator_id"]
        before = posts.height
        posts = posts.filter(~pl.col("creator_id").is_in(gone.implode()))
        creators = creators.filter(pl.col("followers").is_not_null())
        dropped[NO_FOLLOWERS] = unknown.height
        dropped[NO_FOLLOWERS_POSTS] = before - posts.height
    assembled, issues = assemble(
        creators.select("creator_id", *CREATOR_COLUMNS, FILE, AT),
        posts,
        creator_fields=_CREATOR_FIELDS,
        post_fields=_POST_FIELDS,
        window=window,
    )
    if issues:
        raise InputError(issues)
    return InstagramImport(assembled, [*files, *profile_files], skipped, dropped)
