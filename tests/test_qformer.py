"""The Q-Former on the debug preset's sizes: Eq. (2) shapes, batching = per-window loop, masks, streams."""

import pytest
import torch

from acoustemo.config import ModelConfig
from acoustemo.model.qformer import QFormer, pad_windows

CFG = ModelConfig.preset("debug")


def make_qformer(seed: int = 0, **kw) -> QFormer:
    torch.manual_seed(seed)
    args = dict(streams=CFG.acoustic_streams, num_queries=CFG.num_queries, d_model=CFG.d_model,
                num_layers=CFG.qformer_layers, num_heads=CFG.qformer_heads, ffn_dim=CFG.qformer_ffn,
                max_frames=CFG.max_window_frames)
    return QFormer(**{**args, **kw}).eval()


def random_windows(lengths, dim=CFG.acoustic_dim, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, dim, generator=g) * 3 + 1 for n in lengths]


def test_eq2_shapes_and_attention_weights():
    qf = make_qformer()
    frames, mask = pad_windows(random_windows([4, 9, 1]))
    out, attn = qf(frames, mask, return_attention=True)
    assert out.shape == (3, CFG.num_queries, CFG.d_model)
    assert attn.shape == (3, CFG.num_queries, 9)
    assert torch.allclose(attn.sum(-1), torch.ones(3, CFG.num_queries), atol=1e-5)  # a softmax over frames
    assert (attn[~mask.unsqueeze(1).expand_as(attn)] == 0).all()  # padding gets no attention
    assert torch.allclose(attn[2, :, 0], torch.ones(CFG.num_queries))  # a one-frame window attends to it
    # the explicit softmax((QW_Q)(FW_K)^T/sqrt(d_k))(FW_V) path equals the fused SDPA path
    assert torch.allclose(out, qf(frames, mask), atol=1e-5)


def test_batched_equals_per_window_loop():
    qf = make_qformer()
    lengths = [1, 2, 37, 5, 90, 3]  # a one-frame window, very different lengths, one past the position table
    wins = random_windows(lengths)
    frames, mask = pad_windows(wins)
    batched = qf(frames, mask)
    for i, w in enumerate(wins):
        alone = qf(w.unsqueeze(0), torch.ones(1, len(w), dtype=torch.bool))
        assert torch.allclose(batched[i], alone[0], atol=1e-5), f"window {i} ({lengths[i]} frames) differs"


def test_padding_content_is_ignored_and_empty_rows_are_finite():
    qf = make_qformer()
    frames, mask = pad_windows(random_windows([3, 12]))
    garbage = frames.clone()
    garbage[~mask] = 1e4
    assert torch.allclose(qf(frames, mask), qf(garbage, mask), atol=1e-5)
    empty = torch.zeros(2, 5, dtype=torch.bool)  # an all-padding slot must not produce NaN
    assert torch.isfinite(qf(frames[:, :5], empty)).all()


def test_each_stream_is_normalised_on_its_own():
    """Rescaling one stream (a 3-d prosody stream next to a 13-d one) leaves the output unchanged."""
    qf = make_qformer()
    frames, mask = pad_windows(random_windows([6, 4]))
    scaled = frames.clone()
    scaled[..., 13:] = scaled[..., 13:] * 1000 + 50
    assert torch.allclose(qf(frames, mask), qf(scaled, mask), atol=1e-3)
    # ...while the stream still matters: changing its shape changes the output
    shuffled = frames.clone()
    shuffled[..., 13:] = shuffled[..., 13:].flip(-1)
    assert not torch.allclose(qf(frames, mask), qf(shuffled, mask), atol=1e-3)


def test_long_windows_interpolate_positions_and_keep_order():
    qf = make_qformer()
    short = qf.position_encoding(torch.arange(10), torch.full((10,), 10))
    assert torch.equal(short, qf.positions[:10])  # fits: the table itself
    long = qf.position_encoding(torch.arange(200), torch.full((200,), 200))
    assert torch.allclose(long[0], qf.positions[0]) and torch.allclose(long[199], qf.positions[-1])
    assert torch.allclose(long[100], torch.lerp(qf.positions[18], qf.positions[19], 0.0904522), atol=1e-6)
    w = random_windows([200])[0]
    reversed_out = qf(w.flip(0)[None], torch.ones(1, 200, dtype=torch.bool))
    assert not torch.allclose(qf(w[None], torch.ones(1, 200, dtype=torch.bool)), reversed_out, atol=1e-4)


def test_gradients_reach_queries_and_input_projection():
    qf = make_qformer().train()
    frames, mask = pad_windows(random_windows([3, 7]))
    qf(frames, mask).pow(2).mean().backward()
    for name, p in qf.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert qf.queries.grad.abs().sum() > 0 and qf.input.proj.weight.grad.abs().sum() > 0


def test_pad_windows_rejects_nothing():
    with pytest.raises(ValueError):
        pad_windows([])


def test_corpus_feature_stats_are_applied_and_saved_with_the_weights():
    """Global CMVN: inputs are standardised with the training split's per-channel mean/std (buffers)."""
    import torch

    from acoustemo.model.qformer import QFormer

    torch.manual_seed(0)
    qf = QFormer([("a", 5), ("b", 3)], num_queries=2, d_model=12, num_layers=1, num_heads=3, ffn_dim=7,
                 max_frames=16).eval()
    x = torch.randn(2, 6, 8)
    mean, std = torch.linspace(-3, 3, 8), torch.linspace(0.5, 4, 8)
    qf.input.set_feature_stats(mean, std)
    shifted = qf(x * std + mean)
    qf.input.set_feature_stats(torch.zeros(8), torch.ones(8))
    assert torch.allclose(shifted, qf(x), atol=1e-5)  # standardising undoes the corpus shift and scale
    assert {"input.feature_mean", "input.feature_std"} <= set(qf.state_dict())
