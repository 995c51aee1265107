# Dataset stage: LVIS-format train/val JSON and images for each configured dataset.
# Sources: "synthetic" (generated here). Real LVIS plugs in as another source with the same outputs.


rule synthesize:
    output:
        train=f"{EXP}/data/{{dataset}}/train.json",
        val=f"{EXP}/data/{{dataset}}/val.json",
        images=directory(f"{EXP}/data/{{dataset}}/images"),
    log:
        f"{EXP}/logs/synthesize/{{dataset}}.log",
    benchmark:
        f"{EXP}/benchmarks/synthesize/{{dataset}}.tsv"
    conda:
        ENV
    params:
        spec=lambda wc: as_json(config["datasets"][wc.dataset]["synthetic"]),
        root=lambda wc: f"{EXP}/data/{wc.dataset}",
    shell:
        "python -m bags synthesize --spec {params.spec} --out {params.root} 2> {log}"
