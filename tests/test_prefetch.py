"""Background reading of mask chunks (`formats.masks.prefetched`) and pinned copies (`forward.pinned`).

The prefetching reader must give bit-identical RISE maps to the plain reader, read ahead
in a bounded way, hand reader errors to the consumer, and stop when the consumer leaves.
"""
from __future__ import annotations

import threading

import pytest
import torch

from saliency_bench import UserError
from saliency_bench.runtime.forward import ModelRunner, pinned
from saliency_bench.formats.masks import prefetched
from saliency_bench.masks import generate_masks, write_masks
from saliency_bench.rise import rise_saliency

SIZE = (32, 32)


def prefetch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "saliency-bench-prefetch"]


@pytest.fixture
def images():
    return torch.randn(2, 3, *SIZE, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("depth", [1, 3])
def test_yields_every_item_in_order(depth):
    assert list(prefetched(iter(range(17)), depth)) == list(range(17))
    assert list(prefetched([], depth)) == []
    assert not prefetch_threads()


def test_reads_ahead_in_the_background_but_boundedly():
    depth = 2
    produced = []
    next_read = threading.Event()

    def source():
        for item in range(12):
            produced.append(item)
            if item == 1:
                next_read.set()
            yield item

    for consumed, item in enumerate(prefetched(source(), depth), start=1):
        if item == 0:  # item 1 is read while item 0 is still in use
            assert next_read.wait(timeout=10), "the reader did not read ahead"
        assert len(produced) - consumed <= depth + 1  # queued + the one being handed over
    assert produced == list(range(12))


def test_a_reader_error_reaches_the_consumer():
    def source():
        yield 0
        yield 1
        raise ValueError("disk on fire")

    received = []
    with pytest.raises(ValueError, match="disk on fire"):
        for item in prefetched(source()):
            received.append(item)
    assert received == [0, 1]
    assert not prefetch_threads()


def test_leaving_early_stops_the_reader_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            for item in range(1000):
                yield item
        finally:
            closed.set()

    chunks = prefetched(source(), depth=1)
    assert next(chunks) == 0
    chunks.close()
    assert closed.is_set()
    assert not prefetch_threads()


def test_bad_depth_is_a_user_error():
    with pytest.raises(UserError, match="prefetch depth"):
        list(prefetched(range(3), depth=0))


def test_prefetched_rise_is_bit_identical_for_a_mask_file(golden_model, images, tmp_path):
    mask_set = write_masks(tmp_path / "m.h5", "binary", 40, SIZE, p=0.5, seed=4, chunk=8)  # float16 storage
    target = torch.tensor([1, 2])
    plain = rise_saliency(golden_model, images, mask_set, p=0.5, batch_size=8, chunk_size=16, prefetch=0, target=target)
    for depth in (1, 2):
        ahead = rise_saliency(golden_model, images, mask_set, p=0.5, batch_size=8, chunk_size=16, prefetch=depth,
                              target=target)
        assert torch.equal(ahead, plain)  # same chunks and batches, only read in another thread: exact
    assert not prefetch_threads()


def test_prefetched_rise_is_bit_identical_for_a_tensor_and_by_the_mean(golden_model, images):
    masks = generate_masks("gaussian", 30, SIZE, seed=5)  # 30 = 2 chunks of 12 + 6: a partial last chunk
    plain = rise_saliency(golden_model, images, masks, batch_size=6, chunk_size=12)
    ahead = rise_saliency(golden_model, images, masks, batch_size=6, chunk_size=12, prefetch=1)
    assert torch.equal(ahead, plain)


def test_a_failing_forward_pass_stops_the_reader(golden_model, images, tmp_path):
    mask_set = write_masks(tmp_path / "m.h5", "binary", 64, SIZE, p=0.5, seed=6, chunk=8)
    calls = []

    def fail_on_second_chunk(module, inputs, output):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("out of memory")

    handle = golden_model.register_forward_hook(fail_on_second_chunk)
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            rise_saliency(golden_model, images, mask_set, p=0.5, batch_size=8, chunk_size=8, prefetch=1)
    finally:
        handle.remove()
    assert not prefetch_threads()


def test_negative_prefetch_is_a_user_error(golden_model, images):
    with pytest.raises(UserError, match="prefetch"):
        rise_saliency(golden_model, images, generate_masks("binary", 4, SIZE, p=0.5), p=0.5, prefetch=-1)


def test_pinned_is_a_no_op_without_cuda():
    x = torch.ones(3)
    assert pinned(x, torch.device("cpu")) is x
    runner = ModelRunner(torch.nn.Linear(3, 2))
    assert runner.prepare(x) is x  # a CPU model takes the CPU tensor as it is


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_chunks_are_pinned_and_maps_match_the_cpu(golden_model, images, tmp_path):
    device = torch.device("cuda")
    assert pinned(torch.ones(3), device).is_pinned()
    mask_set = write_masks(tmp_path / "m.h5", "binary", 40, SIZE, p=0.5, seed=4, chunk=8)
    cpu = rise_saliency(golden_model, images, mask_set, p=0.5, batch_size=8, chunk_size=16)
    model = golden_model.to(device)
    try:
        plain = rise_saliency(model, images, mask_set, p=0.5, batch_size=8, chunk_size=16, prefetch=0)
        ahead = rise_saliency(model, images, mask_set, p=0.5, batch_size=8, chunk_size=16)  # default: prefetch 1
    finally:
        golden_model.to("cpu")
    assert torch.equal(ahead, plain)
    assert torch.allclose(ahead, cpu, rtol=1e-3, atol=1e-4)
