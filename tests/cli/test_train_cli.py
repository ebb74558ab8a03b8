"""`roofline train`: exit codes, messages, JSON keys."""
import csv
import io
import json
import pytest


def test_train_json_keys(run_cli):
    code, out, err = run_cli("train", "--model", "llama-3.1-8b", "--gpus", "16", "--tp", "2", "--pp", "2",
                             "--global-batch", "64", "--tokens", "1e12", "--storage-bandwidth-gbps", "10",
                             "--mtbf-h", "24", "--format", "json")
    assert code == 0, err
    r = json.loads(out)
    for k in ("memory_per_gpu_bytes", "weights_bytes", "optimizer_bytes", "activations_bytes", "step_time_s",
              "tokens_per_s", "tflops_per_gpu", "mfu", "hfu", "gpu_hours", "energy_j", "train_time_s"):
        assert k in r, k
    assert r["dp"] == 4 and r["gpus"] == 16 and 0 < r["mfu"] < 1 and r["hfu"] >= r["mfu"]
    assert r["checkpoint"]["interval_s"] > 0 and r["checkpoint"]["write_time_s"] > 0


def test_train_table_and_csv(run_cli):
    code, out, _ = run_cli("train", "--gpus", "8")
    assert code == 0 and "memory per GPU" in out and "MFU" in out
    code, out, _ = run_cli("train", "--gpus", "8", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows[0]["dp"] == "8" and float(rows[0]["step_time_s"]) > 0


def test_train_rejects_a_layout_that_does_not_divide(run_cli):
    code, _, err = run_cli("train", "--tp", "3")
    assert code == 2 and "Error: --tp 3 does not divide the 32 attention heads" in err and "Traceback" not in err
    code, _, err = run_cli("train", "--gpus", "8", "--dp", "4")
    assert code == 2 and "Error: --gpus 8 is not --tp x --pp x --dp x --cp" in err
    code, _, err = run_cli("train", "--gpus", "8", "--global-batch", "12")
    assert code == 2 and "Error: --global-batch 12 is not a multiple" in err
    code, _, err = run_cli("train", "--zero", "5")
    assert code == 2 and "Error: --zero must be 0, 1, 2 or 3" in err


def test_train_search(run_cli):
    code, out, err = run_cli("train", "--search", "--gpus", "8", "--global-batch", "64", "--top", "3",
                             "--format", "json")
    assert code == 0, err
    r = json.loads(out)
    assert 1 <= len(r["layouts"]) <= 3 and {"tp", "pp", "dp", "cp", "tokens_per_s"} <= set(r["layouts"][0])
    code, _, err = run_cli("train", "--search")
    assert code == 2 and "--search needs --gpus" in err


def test_train_budget(run_cli):
    code, out, err = run_cli("train", "--gpus", "8", "--budget-flops", "5.76e23", "--format", "json")
    assert code == 0, err
    r = json.loads(out)
    assert r["parameters"] > 1e10 and r["fleet"]["days"] > 0
    code, _, err = run_cli("train", "--budget-flops", "1e20", "--budget-gpu-hours", "10")
    assert code == 2 and "not both" in err


def test_train_degrees_below_one_are_refused_before_dividing(run_cli):
    """--tp 0 (or --pp 0, --cp 0) used to raise ZeroDivisionError deriving the data-parallel degree from --gpus."""
    for flag in ("--tp", "--pp", "--cp"):
        code, _, err = run_cli("train", flag, "0")
        assert code == 2 and f"Error: {flag} must be >= 1, got 0" in err and "Traceback" not in err
    code, _, err = run_cli("train", "--gpus", "-8")
    assert code == 2 and "Error: --gpus must be >= 1, got -8" in err


def test_train_budget_gpu_hours_out_of_range_names_its_own_flag(run_cli):
    """A GPU-hour budget outside the fit's FLOP range used to be refused as `--budget-flops ... got 2.2e-282`,
    a flag and a number the user never gave."""
    for hours in ("1e-300", "1e30", "0", "-1", "nan", "inf"):
        code, _, err = run_cli("train", "--budget-gpu-hours", hours)
        assert code == 2 and "Error: --budget-gpu-hours must be between" in err and "--budget-flops" not in err, err
    code, out, err = run_cli("train", "--gpus", "8", "--budget-gpu-hours", "1e6", "--format", "json")
    assert code == 0 and json.loads(out)["fleet"]["gpu_hours"] > 0, err


@pytest.mark.parametrize("args, message", [
    # a huge token count overflowed the energy row into a 300-digit number
    (["--tokens", "1e308"], "Error: --tokens must be a positive number up to 1e+20, got 1e+308"),
    # a subnormal bandwidth gave an infinite write time and a null interval
    (["--storage-bandwidth-gbps", "5e-324", "--mtbf-h", "1"],
     "Error: a storage bandwidth of 4.94066e-315 bytes/s makes the 1.12e+11-byte checkpoint's write time overflow"),
    # --top was never checked: -5 printed a wrong list, 0 said that no layout fits
    (["--search", "--gpus", "8", "--top", "-5"], "Error: --top must be a whole number >= 1, got -5"),
    (["--search", "--gpus", "8", "--top", "0"], "Error: --top must be a whole number >= 1, got 0"),
])
def test_train_out_of_range_inputs(run_cli, args, message):
    code, out, err = run_cli("train", *args)
    assert code == 2 and out == "" and err.startswith(message) and "\nHint: " in err


def test_train_search_with_expert_parallelism(run_cli):
    """Regression: with --ep 2 the grid's layouts whose dp x cp ep does not divide reached the communication
    model with half a rank per group ("group must be a whole number >= 0, got 0.5", exit 1); only the layouts
    that pass the layout check are timed now."""
    code, out, err = run_cli("train", "--model", "mixtral-8x7b", "--gpus", "16", "--ep", "2", "--search",
                             "--global-batch", "64", "--format", "json")
    assert code == 0, err
    layouts = json.loads(out)["layouts"]
    assert layouts and all((r["dp"] * r["cp"]) % 2 == 0 and r["ep"] == 2 for r in layouts)
