# Figures (PNG, matplotlib) and the HTML pages of the report; per-image figures for at most figures.max_images images.

rule figures_masks:
    conda:
        CONDA_ENV
    input:
        masks=expand(MASK_FILE, mask_id=list(MASKS)),
        images=IMAGE_TABLE,
    output:
        report(directory(f"{FIGURES}/masks"), patterns=["masks-{name}.png"], category="Masks", caption="../report/masks.rst",
               labels={"mask set": "{name}"}),
    params:
        preprocess=preprocess_args(),
        code=stage_fingerprint("figures"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        "logs/figures/masks.log",
    benchmark:
        bench_file("figures/masks.tsv")
    shell:
        "python -m saliency_bench figures masks --masks {input.masks} --images {input.images} {params.preprocess}"
        " --out-dir {output} > {log} 2>&1"


rule figures_saliency:
    conda:
        CONDA_ENV
    input:
        saliency=per_shard(SALIENCY_FILE),
        images=IMAGE_TABLE,
    output:
        overview=report(directory(f"{FIGURES}/overview"), patterns=["overview-{name}.png"],
                        category="Saliency", caption="../report/overview.rst", labels={"image": "{name}"}),
        init_vs_final=report(directory(f"{FIGURES}/abscam-init-vs-final"), patterns=["abscam-init-vs-final-{name}.png"],
                             category="Abs-CAM", caption="../report/abscam_init_vs_final.rst",
                             subcategory=lambda wildcards: f"Image {layer_figure(wildcards.name)[0]}",
                             labels=lambda wildcards: {"layer": f"{layer_figure(wildcards.name)[1]} (Init vs Final)"}),
        layers=report(directory(f"{FIGURES}/abscam-layers"), patterns=["abscam-layers-{name}.png"],
                      category="Abs-CAM", caption="../report/abscam_layers.rst", subcategory="Image {name}",
                      labels={"layer": "all layers (Init and Final)"}),
    params:
        common=lambda wildcards, input: f"--saliency {' '.join(input.saliency)} --images {input.images}",
        preprocess=preprocess_args(),
        classes=class_names_args,  # a function: the data tree is listed only when the job is scheduled
        max_images=CONFIG.figures.max_images,
        code=stage_fingerprint("figures"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        "logs/figures/saliency.log",
    benchmark:
        bench_file("figures/saliency.tsv")
    shell:
        "(python -m saliency_bench figures saliency --kinds overview {params.common} {params.preprocess} {params.classes}"
        " --max-images {params.max_images}"
        " --out-dir {output.overview}"
        " && python -m saliency_bench figures saliency --kinds abscam-init-vs-final {params.common} {params.preprocess}"
        " --max-images {params.max_images} --out-dir {output.init_vs_final}"
        " && python -m saliency_bench figures saliency --kinds abscam-layers {params.common} {params.preprocess}"
        " --max-images {params.max_images} --out-dir {output.layers}) > {log} 2>&1"


rule figures_curves:
    conda:
        CONDA_ENV
    input:
        curves=per_shard(CURVES_FILE),
    output:
        curves=report(directory(f"{FIGURES}/curves"), patterns=["curves-{name}.png"],
                      category="Metrics", caption="../report/curves.rst",
                      subcategory=lambda wildcards: f"Per-image curves: {method_figure(wildcards.name)[0]}",
                      labels=lambda wildcards: {"method": method_figure(wildcards.name)[1]}),
        mean_curves=report(directory(f"{FIGURES}/mean-curves"), patterns=["mean-curves-{name}.png"],
                           category="Metrics", caption="../report/mean_curves.rst", subcategory="Mean curves",
                           labels={"method": "{name}"}),
    params:
        max_images=CONFIG.figures.max_images,
        code=stage_fingerprint("figures"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    log:
        "logs/figures/curves.log",
    benchmark:
        bench_file("figures/curves.tsv")
    shell:
        "(python -m saliency_bench figures curves --kinds curves --curves {input.curves} --max-images {params.max_images}"
        " --out-dir {output.curves}"
        " && python -m saliency_bench figures curves --kinds mean-curves --curves {input.curves} --out-dir {output.mean_curves}) > {log} 2>&1"


rule figures_summary:
    conda:
        CONDA_ENV
    input:
        summary="results/tables/summary.csv",
    output:
        report(f"{FIGURES}/summary.png", category="Summary", caption="../report/summary_chart.rst",
               subcategory=REPORT_SUMMARY, labels={"view": "Summary chart"}),
    params:
        code=stage_fingerprint("figures"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    log:
        "logs/figures/summary.log",
    benchmark:
        bench_file("figures/summary.tsv")
    shell:
        "python -m saliency_bench figures summary --summary {input.summary} --out {output} > {log} 2>&1"


rule report_pages:
    conda:
        CONDA_ENV
    input:
        summary="results/tables/summary.csv",
        per_image="results/tables/per_image.csv",
        figures=figure_targets(),  # last: the introduction quotes every stage's time
        forward=forward_settings_input(),
        plan=PLAN_JSON,  # names this run's benchmark files, whose seconds the introduction gives
    output:
        summary=report(f"{REPORT_PAGES}/summary.html", category="Summary", caption="../report/summary_table.rst",
                       subcategory=REPORT_SUMMARY, labels={"view": "Summary by method (sortable table)"}),
        per_image=report(f"{REPORT_PAGES}/per_image.html", category="Summary", caption="../report/per_image.rst",
                         subcategory=REPORT_SUMMARY, labels={"view": "Values per image (sortable table)"}),
        introduction=f"{REPORT_PAGES}/introduction.html",  # the first page: workflow/report/workflow.rst includes it
    params:
        run=lambda wildcards: q(json.dumps(report_run())),
        forward=lambda wildcards, input: f"--forward-settings {q(input.forward)}" if input.forward else "",
        out_dir=lambda wildcards, output: os.path.dirname(output.summary),
        benchmarks=BENCHMARK_ROOT,
        code=stage_fingerprint("report"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    log:
        "logs/report_pages.log",
    benchmark:
        bench_file("report_pages.tsv")
    shell:
        "python -m saliency_bench report --summary {input.summary} --per-image {input.per_image} --run {params.run}"
        " --benchmarks {params.benchmarks} --plan {input.plan} {params.forward} --out-dir {params.out_dir} > {log} 2>&1"
