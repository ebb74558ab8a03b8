"""`roofline.train` / `roofline.train_search`: the same numbers as `roofline train`, errors as RooflineError."""
import json

import pytest

import roofline
from roofline.errors import RooflineError


def test_train_is_the_cli_json(run_cli):
    r = roofline.train(model="llama-3.1-8b", gpus=16, tp=2, pp=2, global_batch=64, tokens=1e12,
                       storage_bytes_per_s=10e9, mtbf_s=24 * 3600.0)
    code, out, err = run_cli("train", "--model", "llama-3.1-8b", "--gpus", "16", "--tp", "2", "--pp", "2",
                             "--global-batch", "64", "--tokens", "1e12", "--storage-bandwidth-gbps", "10",
                             "--mtbf-h", "24", "--format", "json")
    assert code == 0, err
    cli = json.loads(out)
    assert r["dp"] == 4 and set(r) == set(cli)
    for k in ("step_time_s", "tokens_per_s", "memory_per_gpu_bytes", "mfu", "gpu_hours"):
        assert r[k] == pytest.approx(cli[k], rel=1e-12), k
    assert r["checkpoint"]["interval_s"] == pytest.approx(cli["checkpoint"]["interval_s"])


def test_train_search_is_ranked_and_uses_every_gpu():
    s = roofline.train_search(model="llama-3.1-8b", gpus=16, global_batch=64, top=5)
    assert 1 <= len(s) <= 5 and list(s.columns)[:6] == ["tp", "pp", "dp", "cp", "ep", "micro_batch"]
    assert ((s.tp * s.pp * s.dp * s.cp) == 16).all()
    assert list(s.tokens_per_s) == sorted(s.tokens_per_s, reverse=True)


@pytest.mark.parametrize("kw, param", [(dict(tp=3), "tp"), (dict(gpus=6, tp=4), "gpus"), (dict(zero=7), "zero"),
                                       (dict(attention_kernel="flash9"), "attention_kernel"),
                                       (dict(micro_batch=1.5), "micro_batch"), (dict(recompute="most"), "recompute")])
def test_train_rejects_bad_arguments(kw, param):
    with pytest.raises(RooflineError) as e:
        roofline.train(**kw)
    assert e.value.param == param and e.value.exit_code == 2
