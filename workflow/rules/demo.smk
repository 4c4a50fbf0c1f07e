# The offline demo: synthetic micrographs and a ResNet-18 trained on them (only when the
# config names no data and no model of the user's).


rule demo_data:
    conda:
        CONDA_ENV
    output:
        directory(f"{DEMO_DIR}/data"),
    params:
        per_class=config["demo"]["per_class"],
        none=config["demo"]["none"],
        size=config["demo"]["size"],
        seed=config["demo"]["seed"],
        code=stage_fingerprint("demo_data"),
    threads: 2
    resources:
        mem_mb=2000,
        runtime=15,
    log:
        "logs/demo_data.log",
    benchmark:
        "benchmarks/demo_data.tsv"
    shell:
        "python -m saliency_bench demo-data --out {output} --per-class {params.per_class} --none {params.none}"
        " --size {params.size} --seed {params.seed} --workers {threads} > {log} 2>&1"


rule train_demo:
    conda:
        CONDA_ENV
    input:
        f"{DEMO_DIR}/data",
    output:
        model=f"{DEMO_DIR}/model.pt",
        card=f"{DEMO_DIR}/model_card.json",
    params:
        size=config["demo"]["size"],
        epochs=config["demo"]["epochs"],
        seed=config["demo"]["seed"],
        time_limit=config["demo"]["time_limit"],
        val_fraction=config["data"]["val_fraction"],
        split_seed=config["data"]["split_seed"],
        code=stage_fingerprint("train_demo"),
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        "logs/train_demo.log",
    benchmark:
        "benchmarks/train_demo.tsv"
    shell:
        "python -m saliency_bench train-demo --data {input} --size {params.size} --epochs {params.epochs} --seed {params.seed}"
        " --val-fraction {params.val_fraction} --split-seed {params.split_seed} --time-limit {params.time_limit} --threads {threads}"
        " --out {output.model} --card {output.card} > {log} 2>&1"
