# Comparison tables with confidence intervals, paired tests, chance baselines and localisation.


rule aggregate:
    conda:
        CONDA_ENV
    input:
        records=per_shard(RECORDS_FILE),
        saliency=per_shard(SALIENCY_FILE),
        images=IMAGE_TABLE,
    output:
        per_image=report("results/tables/per_image.csv", category="Summary", caption="../report/per_image.rst",
                         subcategory="Downloads (CSV)", labels={"file": "per_image.csv"}),
        summary=report("results/tables/summary.csv", category="Summary", caption="../report/summary_table.rst",
                       subcategory="Downloads (CSV)", labels={"file": "summary.csv"}),
        markdown="results/tables/summary.md",
    params:
        evidence=f"--evidence-root {q(EVIDENCE_ROOT)}" if EVIDENCE_ROOT else "",
        evidence_files=lambda wildcards: evidence_masks(),
        bootstrap=CONFIG.stats.bootstrap,
        seed=CONFIG.stats.seed,
        alpha=CONFIG.stats.alpha,
        out_dir=lambda wildcards, output: os.path.dirname(output.summary),
        code=stage_fingerprint("aggregate"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        "logs/aggregate.log",
    benchmark:
        bench_file("aggregate.tsv")
    shell:
        "python -m saliency_bench aggregate --records {input.records} --saliency {input.saliency} --images {input.images}"
        " {params.evidence} --bootstrap {params.bootstrap} --seed {params.seed} --alpha {params.alpha}"
        " --out-dir {params.out_dir} > {log} 2>&1"
