"""Our A1111-style prompt encoder against diffusers' own encoding, and long-prompt chunking."""
from __future__ import annotations

import pytest
import torch

from webui.engine.generation.prompt_encoding import chunk_tokens, count_chunks, encode_pieces
from webui.engine.models.loader import load_checkpoint


@pytest.fixture(scope="module")
def pipes(tiny_checkpoints, tmp_path_factory):
    cache = tmp_path_factory.mktemp("enc-cache")
    return {family: load_checkpoint(tiny_checkpoints[family], cache_dir=cache).pipeline
            for family in ("sd1", "sd2", "sdxl")}


@pytest.mark.parametrize("family", ["sd1", "sd2"])
def test_plain_prompt_equals_diffusers_encode_prompt(pipes, family):
    pipe = pipes[family]
    with torch.inference_mode():
        theirs, theirs_neg = pipe.encode_prompt("a photo of a cat", "cpu", 1, True, "ugly, blurry")
        ours = encode_pieces(pipe, [("a photo of a cat", 1.0)])
        ours_neg = encode_pieces(pipe, [("ugly, blurry", 1.0)])
    assert torch.equal(ours.embeds, theirs)
    assert torch.equal(ours_neg.embeds, theirs_neg)


def test_plain_prompt_equals_diffusers_encode_prompt_sdxl(pipes):
    pipe = pipes["sdxl"]
    with torch.inference_mode():
        embeds, neg, pooled, neg_pooled = pipe.encode_prompt("a photo of a cat", prompt_2=None, device="cpu",
                                                             negative_prompt="ugly")
        ours = encode_pieces(pipe, [("a photo of a cat", 1.0)])
        ours_neg = encode_pieces(pipe, [("ugly", 1.0)])
    assert ours.embeds.shape[-1] == 32 + 48  # both text encoders, concatenated
    assert torch.equal(ours.embeds, embeds)
    assert torch.equal(ours.pooled, pooled)
    assert torch.equal(ours_neg.embeds, neg)
    assert torch.equal(ours_neg.pooled, neg_pooled)


def test_156_token_prompt_gives_two_chunks(pipes):
    pipe = pipes["sd1"]
    prompt = " ".join(["cat"] * 156)
    assert count_chunks(pipe, [(prompt, 1.0)]) == 3  # 75 + 75 + 6
    prompt = " ".join(["cat"] * 150)
    with torch.inference_mode():
        cond = encode_pieces(pipe, [(prompt, 1.0)])
    assert cond.chunks == 2 and cond.embeds.shape[1] == 154


def test_break_and_padding_to_chunk_count(pipes):
    pipe = pipes["sd1"]
    assert count_chunks(pipe, [("a cat", 1.0), ("BREAK", -1), ("a dog", 1.0)]) == 2
    with torch.inference_mode():
        padded = encode_pieces(pipe, [("", 1.0)], min_chunks=3)
    assert padded.chunks == 3


def test_comma_backtrack_moves_the_tail_to_the_next_chunk(pipes):
    tokenizer = pipes["sd1"].tokenizer
    prompt = " ".join(["cat"] * 70) + ", " + " ".join(["dog"] * 10)
    chunks = chunk_tokens(tokenizer, [(prompt, 1.0)])
    assert len(chunks[0].tokens) == 71  # 70 cats and the comma
    assert len(chunks[1].tokens) == 10


def test_weights_change_embeddings_but_keep_the_mean(pipes):
    pipe = pipes["sd1"]
    with torch.inference_mode():
        plain = encode_pieces(pipe, [("a red circle", 1.0)])
        weighted = encode_pieces(pipe, [("a ", 1.0), ("red", 1.5), (" circle", 1.0)])
    assert not torch.equal(plain.embeds, weighted.embeds)
    assert torch.allclose(plain.embeds.mean(), weighted.embeds.mean(), atol=1e-6)
