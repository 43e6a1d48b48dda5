"""Bundles are untrusted content: every file loaded is listed with its sha256 and lies inside the bundle, the id is
computed from the content, and /admin/reload takes an explicit source and bundle paths only under the reload roots.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from audiencefit.features.errors import InputError
from tests.e2e.conftest import ADMIN_KEY, make_client

ADMIN = {"X-API-Key": ADMIN_KEY}


def _copy(bundle: Path, name: str) -> Path:
    """A copy of ``bundle`` beside it (under the tests' reload root), replacing any earlier copy of that name."""
    out = bundle.parent / name
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(bundle, out, symlinks=True)
    return out


def _meta(bundle: Path) -> dict:
    return json.loads((bundle / "bundle.json").read_text())


def _write_meta(bundle: Path, meta: dict) -> None:
    (bundle / "bundle.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


def _model_file(bundle: Path) -> Path:
    return bundle / "models" / "conversions_mean.txt"


def test_files_climbing_out_are_refused_alike_whether_the_target_exists(bundles) -> None:
    from audiencefit.models.bundle import load_bundle

    first, _ = bundles
    (first.parent / "present-file").write_text("exists")
    errors = []
    for name, target in (("climb-present", "present-file"), ("climb-absent", "absent-file")):
        bad = _copy(first, name)
        meta = _meta(bad)
        meta["files"][f"../{target}"] = "0" * 64  # ../present-file exists beside the bundle, ../absent-file not
        _write_meta(bad, meta)
        with pytest.raises(InputError) as info:
            load_bundle(bad)
        errors.append(str(info.value).replace(name, "<copy>").replace(target, "<target>"))
        assert "field 'files'" in str(info.value) and "climbs out" in str(info.value)
    assert errors[0] == errors[1]  # not a file-existence oracle


@pytest.mark.parametrize("entry", ["/etc/passwd", "models/../../x", "models/\x00x", "", "models//x", "./models/x"])
def test_files_entries_that_are_not_plain_relative_paths_are_refused(bundles, entry: str) -> None:
    from audiencefit.models.bundle import load_bundle

    bad = _copy(bundles[0], "odd-entry")
    meta = _meta(bad)
    meta["files"][entry] = "0" * 64
    _write_meta(bad, meta)
    with pytest.raises(InputError, match=r"bundle\.json, field 'files': entry .* refused"):
        load_bundle(bad)


def test_files_removed_and_model_rewritten_is_refused(bundles) -> None:
    from audiencefit.models.bundle import load_bundle

    bad = _copy(bundles[0], "no-files")
    meta = _meta(bad)
    del meta["files"]
    _write_meta(bad, meta)
    text = _model_file(bad).read_text()
    _model_file(bad).write_text(text.replace("leaf_value=", "leaf_value=0 ", 1))
    with pytest.raises(InputError, match=r"field 'files': missing.*retrain"):
        load_bundle(bad)


def test_a_model_file_left_out_of_files_is_refused(bundles) -> None:
    from audiencefit.models.bundle import load_bundle

    bad = _copy(bundles[0], "unlisted")
    meta = _meta(bad)
    del meta["files"]["models/conversions_mean.txt"]
    meta.pop("bundle_id")
    _write_meta(bad, meta)
    with pytest.raises(InputError, match=r"models/conversions_mean\.txt.*does not list"):
        load_bundle(bad)


def test_stated_bundle_id_must_match_the_content(bundles) -> None:
    from audiencefit.models.bundle import load_bundle

    first, _ = bundles
    bad = _copy(first, "stated-id")
    meta = _meta(bad)
    meta["bundle_id"] = "0123456789abcdef"
    _write_meta(bad, meta)
    with pytest.raises(InputError, match="states bundle_id '0123456789abcdef'"):
        load_bundle(bad)
    # An edited field changes the computed id: the stated one no longer matches.
    edited = _copy(first, "edited-field")
    meta = _meta(edited)
    meta["training"] = {"seed": 99}
    _write_meta(edited, meta)
    with pytest.raises(InputError, match="states bundle_id"):
        load_bundle(edited)
    # Without a stated id the computed one is used (and differs from the original's).
    meta.pop("bundle_id")
    _write_meta(edited, meta)
    assert load_bundle(edited).bundle_id not in (_meta(first)["bundle_id"], "")
    assert load_bundle(first).bundle_id == _meta(first)["bundle_id"]


def test_symlink_in_a_bundle_pointing_outside_is_refused(bundles, tmp_path: Path) -> None:
    from audiencefit.models.bundle import load_bundle

    bad = _copy(bundles[0], "symlinked")
    outside = tmp_path / "outside.txt"
    shutil.copyfile(_model_file(bad), outside)  # the same bytes: only where it lives is wrong
    _model_file(bad).unlink()
    os.symlink(outside, _model_file(bad))
    with pytest.raises(InputError, match=r"conversions_mean\.txt' resolves \(through a symlink\) outside"):
        load_bundle(bad)
    # The models directory itself a symlink to a copy outside: refused too.
    shutil.rmtree(bad)
    bad = _copy(bundles[0], "symlinked-dir")
    shutil.copytree(bad / "models", tmp_path / "models")
    shutil.rmtree(bad / "models")
    os.symlink(tmp_path / "models", bad / "models")
    with pytest.raises(InputError, match="outside its directory"):
        load_bundle(bad)


def test_format_2_bundles_still_load_and_without_files_say_retrain(bundles) -> None:
    from audiencefit.models.bundle import load_bundle, sha256_of_text

    old = _copy(bundles[0], "format-2")
    meta = _meta(old)
    meta["format"] = 2
    meta["bundle_id"] = sha256_of_text(json.dumps(meta["files"], sort_keys=True))[:16]  # how format 2 defined it
    _write_meta(old, meta)
    assert load_bundle(old).bundle_id == meta["bundle_id"]
    del meta["files"]
    _write_meta(old, meta)
    with pytest.raises(InputError, match="retrain"):
        load_bundle(old)


def test_reload_needs_an_explicit_source(api_settings, small_features: Path, bundles) -> None:
    first, second = bundles
    for client in make_client(api_settings, small_features, first):
        for body in ({}, {"unknown": 1}, {"source": "configured", "bundle_path": str(second)}, {"source": "other"}):
            resp = client.post("/admin/reload", json=body, headers=ADMIN)
            assert resp.status_code == 422, (body, resp.text)
        empty = client.post("/admin/reload", json={}, headers=ADMIN)
        assert "'bundle_path', 'model_uri' or 'source'" in empty.text
        no_body = client.post("/admin/reload", headers=ADMIN)
        assert no_body.status_code == 422 and "JSON body is required" in no_body.text
        bad_uri = client.post("/admin/reload", json={"model_uri": "/etc"}, headers=ADMIN)
        assert bad_uri.status_code == 422
        assert client.post("/admin/reload", json={"bundle_path": str(second)}, headers=ADMIN).status_code == 200
        resp = client.post("/admin/reload", json={"source": "configured"}, headers=ADMIN)
        assert resp.status_code == 200 and resp.json()["serving_bundle_id"] == _meta(first)["bundle_id"]
        schema = client.get("/openapi.json").json()["paths"]["/admin/reload"]["post"]
        assert schema["requestBody"]["required"] is True and '"source": "configured"' in schema["description"]


def test_reload_by_path_outside_the_roots_is_refused(api_settings, small_features: Path, bundles, tmp_path) -> None:
    first, _ = bundles
    outside = tmp_path / "valid-bundle-outside"
    shutil.copytree(first, outside)
    link = first.parent / f"link-out-{tmp_path.name}"  # inside a root by name, outside once resolved
    os.symlink(outside, link)
    for client in make_client(api_settings, small_features, first):
        answers = []
        for path in (outside, tmp_path / "does-not-exist", link, Path("relative/path")):
            resp = client.post("/admin/reload", json={"bundle_path": str(path)}, headers=ADMIN)
            assert resp.status_code == 403, resp.text
            answers.append(resp.json())
        assert all(a == answers[0] for a in answers)  # the same answer whether the path exists or not
        assert "AUDIENCEFIT_RELOAD_ROOTS" in answers[0]["detail"]
        ready = client.get("/readyz").json()
        assert ready["last_reload_failed"] is False and ready["bundle_id"] == _meta(first)["bundle_id"]


def test_reload_roots_setting(api_settings, small_features: Path, bundles, tmp_path) -> None:
    first, _ = bundles
    outside = tmp_path / "elsewhere" / "b"
    shutil.copytree(first, outside)
    custom = api_settings.model_copy(update={"reload_roots": [tmp_path / "elsewhere"]})
    for client in make_client(custom, small_features, first):
        ok = client.post("/admin/reload", json={"bundle_path": str(outside)}, headers=ADMIN)
        assert ok.status_code == 200, ok.text
        sibling = client.post("/admin/reload", json={"bundle_path": str(bundles[1])}, headers=ADMIN)
        assert sibling.status_code == 403  # the start bundle's directory is a root only by default
        # The configured source is always allowed, even outside the configured roots.
        assert client.post("/admin/reload", json={"source": "configured"}, headers=ADMIN).status_code == 200


def test_damaged_bundle_409_is_not_an_oracle_for_paths_outside(api_settings, small_features: Path, bundles) -> None:
    first, _ = bundles
    for client in make_client(api_settings, small_features, first):
        errors = []
        for name, target in (("oracle-present", "/etc/passwd"), ("oracle-absent", "/etc/no-such-file-here")):
            bad = _copy(first, name)
            meta = _meta(bad)
            meta["files"]["models/conversions_mean.txt"] = "0" * 64
            _write_meta(bad, meta)
            _model_file(bad).unlink()
            os.symlink(target, _model_file(bad))
            resp = client.post("/admin/reload", json={"bundle_path": str(bad)}, headers=ADMIN)
            assert resp.status_code == 409
            errors.append(resp.json()["error"].replace(name, "<copy>"))
        assert errors[0] == errors[1], errors
        assert "missing" not in errors[0] and "mismatch" not in errors[0]
