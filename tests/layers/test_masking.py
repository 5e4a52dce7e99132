"""Padding masks: a padded batch gives, at every valid step, what each sequence gives run alone at its
true length (per mask-aware layer type), masks flow through keep-layers and are refused by layers that
would mix padded steps in."""
from __future__ import annotations

import pytest
import torch

from layerforge.build import build as build_model
from layerforge.errors import SpecError

T, V = 7, 20
LENGTHS = [7, 3, 1, 5]


def padded_ids(seed: int = 0, left: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A right-padded (``left``: left-padded) batch of ids (0 = padding) and the same sequences unpadded."""
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(1, V, (n,), generator=g) for n in LENGTHS]
    batch = torch.zeros(len(seqs), T, dtype=torch.long)
    for b, s in enumerate(seqs):
        batch[b, slice(T - len(s), T) if left else slice(0, len(s))] = s
    return batch, seqs


def model(layers: list[dict], input_shape: list[int] | None = None):
    spec = {"model": {"input_shape": input_shape or [T],
                      "layers": [{"type": "embedding", "input_dim": V, "output_dim": 6, "mask_zero": True}, *layers]}}
    _, graph, module = build_model(spec, seed=0)
    return graph, module.eval()


CASES = {
    "simple_rnn": {"type": "simple_rnn", "units": 5},
    "simple_rnn_seq": {"type": "simple_rnn", "units": 5, "return_sequences": True},
    "lstm": {"type": "lstm", "units": 5, "num_layers": 2},
    "lstm_seq": {"type": "lstm", "units": 5, "return_sequences": True},
    "gru": {"type": "gru", "units": 5},
    "gru_backwards": {"type": "gru", "units": 5, "go_backwards": True},
    "bi_lstm": {"type": "lstm", "units": 5, "bidirectional": True},
    "bi_gru_seq_sum": {"type": "gru", "units": 5, "bidirectional": True, "return_sequences": True, "merge_mode": "sum"},
    "self_attention": {"type": "self_attention", "units": 4},
    "self_attention_causal": {"type": "self_attention", "causal": True},
    "attention": {"type": "attention", "inputs": ["embedding_1", "embedding_1"], "use_scale": True},
    "attention_concat": {"type": "attention", "inputs": ["embedding_1", "embedding_1"], "score_mode": "concat"},
    "multi_head_attention": {"type": "multi_head_attention", "num_heads": 2},
    "sparse_attention": {"type": "sparse_attention", "num_heads": 2, "window": 2},
    "sequence_pool_avg": {"type": "sequence_pool", "mode": "avg"},
    "sequence_pool_max": {"type": "sequence_pool", "mode": "max"},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_padded_batch_equals_each_sequence_alone(case: str):
    graph, net = model([CASES[case]])
    batch, seqs = padded_ids()
    with torch.no_grad():
        out = net(batch)
        for b, s in enumerate(seqs):
            alone = net(s.unsqueeze(0))[0]  # (L, …) or (…): the sequence at its true length, no padding
            got = out[b, : len(s)] if alone.dim() == 2 else out[b]
            torch.testing.assert_close(got, alone, rtol=0, atol=1e-6)


LEFT_CASES = {**CASES, "lstm_loop_backwards_seq": {"type": "lstm", "units": 5, "recurrent_activation": "hard_sigmoid",
                                                  "go_backwards": True, "return_sequences": True}}


@pytest.mark.parametrize("case", sorted(LEFT_CASES))
def test_left_padded_batch_equals_each_sequence_alone(case: str):
    """data.padding: pre: the valid steps sit at the end; every layer gives what the sequence gives alone."""
    graph, net = model([LEFT_CASES[case]])
    batch, seqs = padded_ids(left=True)
    with torch.no_grad():
        out = net(batch)
        for b, s in enumerate(seqs):
            alone = net(s.unsqueeze(0))[0]
            got = out[b, T - len(s):] if alone.dim() == 2 else out[b]
            torch.testing.assert_close(got, alone, rtol=0, atol=1e-6)
            if alone.dim() == 2 and case.startswith(("lstm", "gru", "simple", "bi")):
                assert out[b, : T - len(s)].abs().sum() == 0  # padded steps of a recurrent output stay 0


def test_padded_steps_of_a_sequence_output_are_zero():
    _, net = model([{"type": "lstm", "units": 3, "return_sequences": True}])
    batch, _ = padded_ids()
    with torch.no_grad():
        out = net(batch)
    assert out[1, 3:].abs().sum() == 0 and out[2, 1:].abs().sum() == 0


def test_mask_flows_through_per_step_layers_to_the_recurrent_layer():
    graph, net = model([{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dropout", "rate": 0.1},
                        {"type": "layernorm"}, {"type": "gru", "units": 3}])
    assert [n.out_masked for n in graph.nodes] == [True, True, True, True, False]
    batch, seqs = padded_ids()
    with torch.no_grad():
        out = net(batch)
        torch.testing.assert_close(out[1], net(seqs[1].unsqueeze(0))[0], rtol=0, atol=1e-6)


def test_a_layer_that_would_mix_padded_steps_refuses_a_masked_input():
    with pytest.raises(SpecError, match="carries a padding mask") as e:
        model([{"type": "flatten"}, {"type": "dense", "units": 2}])
    assert "sequence_pool" in str(e.value)


def test_masking_layer_marks_steps_equal_to_mask_value():
    spec = {"model": {"input_shape": [4, 2], "layers": [{"type": "masking", "mask_value": -1.0},
                                                        {"type": "simple_rnn", "units": 3}]}}
    _, _, net = build_model(spec, seed=0)
    x = torch.randn(2, 4, 2)
    x[0, 2:] = -1.0  # sequence 0 has 2 valid steps
    with torch.no_grad():
        torch.testing.assert_close(net(x)[0], net(x[:1, :2])[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(net(x)[1], net(x[1:])[0], rtol=0, atol=1e-6)


def test_masking_zeroes_padded_steps_and_keeps_partly_padded_ones():
    from layerforge.layers import get_layer_type

    m = get_layer_type("masking")(type="masking", mask_value=0.0).build([(3, 2)])
    x = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [2.0, 3.0]]])
    assert m.compute_mask(x).tolist() == [[True, False, True]]
    assert torch.equal(m(x), x)


def test_an_empty_sequence_gives_zeros_not_nan():
    _, net = model([{"type": "self_attention"}, {"type": "lstm", "units": 3}])
    with torch.no_grad():
        out = net(torch.tensor([[0] * T, [1] * T]))
    assert torch.isfinite(out).all() and out[0].abs().sum() == 0


def test_a_recurrent_layer_skips_masked_steps_anywhere_in_the_row():
    """Gaps (ids 0 inside a sequence) are skipped with the state carried over them: the result equals
    the sequence with those steps removed, and the output sequence is 0 at the gaps."""
    _, net = model([{"type": "gru", "units": 4, "return_sequences": True}])
    row = torch.tensor([[0, 5, 0, 7, 3, 0, 9]])
    with torch.no_grad():
        out = net(row)[0]
        alone = net(torch.tensor([[5, 7, 3, 9]]))[0]
    torch.testing.assert_close(out[[1, 3, 4, 6]], alone, rtol=0, atol=1e-6)
    assert out[[0, 2, 5]].abs().sum() == 0
