# saliency-bench: masks -> saliency -> deletion/insertion -> tables and figures.
# Run: snakemake --cores all   (config/config.yaml: the offline demo)
#      snakemake --cores all --configfile config/paper.yaml   (the study's protocol on your data)
from saliency_bench.workflow_config import demo_config_file, uses_demo_settings

# The demo's settings are the base of demo runs only: a --configfile / --config that names your data
# and model starts from the schema's defaults (the study's protocol), not from the demo's. They come
# from the working directory's config/config.yaml, else from the workflow's own.
if uses_demo_settings(config):
    configfile: demo_config_file(workflow.basedir)
report: "workflow/report/workflow.rst"  # the first page; it includes results/report/introduction.html


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/images.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/masks.smk"
include: "workflow/rules/explain.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/sanity.smk"


rule all:
    input:
        all_targets(),
        TIMING,
    default_target: True
