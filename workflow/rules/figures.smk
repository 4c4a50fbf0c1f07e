# Figures (PNG, matplotlib) for the report; per-image figures for at most figures.max_images images.

FIGURES = "results/figures"


def figure_targets():
    return [f"{FIGURES}/masks", f"{FIGURES}/saliency", f"{FIGURES}/curves", f"{FIGURES}/summary.png"]


rule figures_masks:
    input:
        masks=expand(MASK_FILE, mask_id=list(MASKS)),
        images=IMAGE_TABLE,
    output:
        report(directory(f"{FIGURES}/masks"), patterns=["{name}.png"], category="Masks", caption="../report/masks.rst"),
    params:
        preprocess=preprocess_args(),
        code=stage_fingerprint("figures"),
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "logs/figures/masks.log",
    benchmark:
        "benchmarks/figures/masks.tsv"
    shell:
        "saliency-bench figures masks --masks {input.masks} --images {input.images} {params.preprocess}"
        " --out-dir {output} > {log} 2>&1"


rule figures_saliency:
    input:
        saliency=per_shard(SALIENCY_FILE),
        images=IMAGE_TABLE,
    output:
        report(directory(f"{FIGURES}/saliency"), patterns=["{name}.png"], category="Saliency", caption="../report/overview.rst"),
    params:
        preprocess=preprocess_args(),
        max_images=config["figures"]["max_images"],
        code=stage_fingerprint("figures"),
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        "logs/figures/saliency.log",
    benchmark:
        "benchmarks/figures/saliency.tsv"
    shell:
        "saliency-bench figures saliency --saliency {input.saliency} --images {input.images} {params.preprocess}"
        " --max-images {params.max_images} --out-dir {output} > {log} 2>&1"


rule figures_curves:
    input:
        curves=per_shard(CURVES_FILE),
    output:
        report(directory(f"{FIGURES}/curves"), patterns=["{name}.png"], category="Metrics", caption="../report/curves.rst"),
    params:
        max_images=config["figures"]["max_images"],
        code=stage_fingerprint("figures"),
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        "logs/figures/curves.log",
    benchmark:
        "benchmarks/figures/curves.tsv"
    shell:
        "saliency-bench figures curves --curves {input.curves} --max-images {params.max_images}"
        " --out-dir {output} > {log} 2>&1"


rule figures_summary:
    input:
        summary="results/tables/summary.csv",
    output:
        report(f"{FIGURES}/summary.png", category="Summary", caption="../report/summary_chart.rst"),
    params:
        code=stage_fingerprint("figures"),
    resources:
        mem_mb=1000,
        runtime=5,
    log:
        "logs/figures/summary.log",
    benchmark:
        "benchmarks/figures/summary.tsv"
    shell:
        "saliency-bench figures summary --summary {input.summary} --out {output} > {log} 2>&1"
