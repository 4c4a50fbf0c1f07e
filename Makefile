# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-kernels setup report bench clean

$(STAMP): pyproject.toml envs/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -r envs/requirements.txt
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores all $(SNAKEMAKE_ARGS)

report: $(STAMP)
	$(BIN)/snakemake --cores all --report results/report.html

# Two worker processes (pytest-xdist): most tests are single-threaded Python or start one Snakemake
# job at a time, so on 2 cores one worker alone leaves a core idle about a third of the time.
# tests/conftest.py keeps the tests that share a session fixture in one worker. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

# The fast numeric subset with ATen, oneDNN and MKL all on kernels other than the machine's
# default, so that a test relying on one CPU's float32 summation order fails here (tests/README.md).
KERNEL_ENV := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2
# The slowest golden cases stay in `make test` only: Abs-CAM Final at layer3/layer4 (3072 forward
# passes, ~2 min) and the softmax and Gaussian RISE maps (~35 s).
KERNEL_TESTS := tests/test_golden_methods.py tests/test_golden_metrics.py tests/test_metrics.py tests/test_rise.py \
	tests/test_abscam.py tests/test_evaluate_cli.py tests/test_explain_cli.py \
	--deselect "tests/test_golden_methods.py::test_abscam_final[layer3]" \
	--deselect "tests/test_golden_methods.py::test_abscam_final[layer4]" \
	--deselect "tests/test_golden_methods.py::test_rise_saliency[rise_binary_masks-rise_binary_saliency_softmax-softmax-True]" \
	--deselect "tests/test_golden_methods.py::test_rise_saliency[rise_gaussian_masks-rise_gaussian_saliency_logits-logits-False]"

test-kernels: $(STAMP)
	$(KERNEL_ENV) $(BIN)/pytest -m "not workflow and not slurm" $(KERNEL_TESTS) $(KERNEL_PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/efficiency.py

clean:
	rm -rf results logs .snakemake
