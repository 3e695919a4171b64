"""Tag autocomplete matching on tagcomplete-format CSV files, including the shipped tag file."""
from __future__ import annotations

import os

from tests.extensions_builtin.conftest import BUILTIN, builtin_module

tag_index = builtin_module("tag-autocomplete", "tag_index")


def _values(suggestions):
    return [s.value for s in suggestions]


def test_shipped_csv_parses_and_ranks_prefix_then_count():
    tags = tag_index.TagFiles(BUILTIN / "tag-autocomplete" / "tags").tags()
    assert 30 <= len(tags) <= 100 and all(t.name for t in tags)
    found = tag_index.suggest("s", tags, [], [])
    # prefix matches first, by count: solo (4800) before smile (4200) before short_hair (3500)
    assert _values(found)[:3] == ["solo", "smile", "short hair"]
    assert _values(tag_index.suggest("long h", tags, [], [])) == ["long hair"]


def test_aliases_escaping_and_files_reloaded(tmp_path):
    (tmp_path / "a.csv").write_text('tag,category,count,aliases\nsmile_(happy),0,10,"grin,beam"\n'
                                    "# comment\nbroken,x,1,\nnight_sky,0,5,\n", encoding="utf-8")
    files = tag_index.TagFiles(tmp_path)
    tags = files.tags()
    assert [t.name for t in tags] == ["smile_(happy)", "night_sky"]
    grin = tag_index.suggest("gri", tags, [], [])
    assert [(s.value, s.alias, s.kind) for s in grin] == [(r"smile \(happy\)", "grin", "general")]
    assert _values(tag_index.suggest("sky", tags, [], [])) == ["night sky"]
    assert _values(tag_index.suggest("night_", tags, [], [], replace_underscores=False)) == ["night_sky"]
    path = tmp_path / "a.csv"
    path.write_text("fresh_tag,0,1,\n", encoding="utf-8")
    os.utime(path, (1, 1))
    assert [t.name for t in files.tags()] == ["fresh_tag"]


def test_lora_calls_and_embeddings():
    loras = ["zorb", "detail-tweaker", "Zebra"]
    assert _values(tag_index.suggest("<lora:z", [], loras, [])) == ["<lora:Zebra:1>", "<lora:zorb:1>"]
    assert _values(tag_index.suggest("<lyco:tweak", [], loras, [])) == ["<lyco:detail-tweaker:1>"]
    assert _values(tag_index.suggest("<zo", [], loras, [])) == ["<lora:zorb:1>"]
    found = tag_index.suggest("bad", [tag_index.Tag("bad_anatomy", 0, 9)], [], ["badhands", "verybad"])
    assert [(s.value, s.kind) for s in found] == [("bad anatomy", "general"), ("badhands", "embedding"),
                                                  ("verybad", "embedding")]
    assert tag_index.suggest("  ", [], loras, ["x"]) == []


def test_network_names_are_listed_again_only_after_a_few_seconds():
    main = builtin_module("tag-autocomplete", "main")
    calls, now = [], [100.0]

    class Networks:
        def lora_list(self):
            calls.append("loras")
            return [{"name": "zorb"}, {"name": "Alpha"}]

        def embedding_list(self):
            return {"loaded": {"good": {}}, "skipped": {"other-model": {}}}

    names = main.NetworkNames(Networks(), clock=lambda: now[0])
    assert names.names() == (["Alpha", "zorb"], ["good", "other-model"])
    now[0] += main.NAMES_TTL_S / 2
    names.names()
    assert calls == ["loras"]
    now[0] += main.NAMES_TTL_S
    names.names()
    assert calls == ["loras", "loras"]
