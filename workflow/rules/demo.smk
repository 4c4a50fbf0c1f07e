# The offline demo: synthetic micrographs and the ResNet-18 that ships with the package (only
# when the config names no data and no model of the user's). demo.train: true trains one instead.
from saliency_bench.demo import shipped as shipped_model


rule demo_data:
    conda:
        CONDA_ENV
    output:
        directory(f"{DEMO_DIR}/data"),
    params:
        per_class=CONFIG.demo.per_class,
        none=CONFIG.demo.none,
        size=CONFIG.demo.size,
        seed=CONFIG.demo.seed,
        code=stage_fingerprint("demo_data"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=15,
    log:
        "logs/demo_data.log",
    benchmark:
        bench_file("demo_data.tsv")
    shell:
        "python -m saliency_bench demo-data --out {output} --per-class {params.per_class} --none {params.none}"
        " --size {params.size} --seed {params.seed} --workers {threads} > {log} 2>&1"


if CONFIG.demo.train:

    rule train_demo:
        conda:
            CONDA_ENV
        input:
            f"{DEMO_DIR}/data",
        output:
            model=f"{DEMO_DIR}/model.pt",
            card=f"{DEMO_DIR}/model_card.json",
        params:
            size=CONFIG.demo.size,
            epochs=CONFIG.demo.epochs,
            seed=CONFIG.demo.seed,
            time_limit=CONFIG.demo.time_limit,
            val_fraction=CONFIG.data.val_fraction,
            split_seed=CONFIG.data.split_seed,
            code=stage_fingerprint("train_demo"),
        threads: 2
        resources:
            mem_mb=4000,
            runtime=30,
        log:
            "logs/train_demo.log",
        benchmark:
            bench_file(TRAIN_DEMO_BENCHMARK)
        shell:
            "python -m saliency_bench train-demo --data {input} --size {params.size} --epochs {params.epochs} --seed {params.seed}"
            " --val-fraction {params.val_fraction} --split-seed {params.split_seed} --time-limit {params.time_limit} --threads {threads}"
            " --out {output.model} --card {output.card} > {log} 2>&1"

else:

    rule demo_model:
        conda:
            CONDA_ENV
        input:
            str(shipped_model.CHECKPOINT),
        output:
            model=f"{DEMO_DIR}/model.pt",
            card=f"{DEMO_DIR}/model_card.json",
        params:
            sha256=shipped_model.SHA256,
            code=stage_fingerprint("demo_model"),
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        log:
            "logs/demo_model.log",
        benchmark:
            bench_file("demo_model.tsv")
        shell:
            "python -m saliency_bench demo-model --out {output.model} --card {output.card} > {log} 2>&1"
