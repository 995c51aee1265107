rule comparison_table:
    input:
        baseline=f"{EXP}/runs/longtail/baseline/metrics.json",
        bags=f"{EXP}/runs/longtail/bags/metrics.json",
    output:
        csv=report(
            f"{EXP}/tables/comparison.csv",
            caption="../report/comparison.rst",
            category="Tables",
        ),
        md=f"{EXP}/tables/comparison.md",
        tex=f"{EXP}/tables/comparison.tex",
    log:
        f"{EXP}/logs/tables/comparison.log",
    benchmark:
        f"{EXP}/benchmarks/tables/comparison.tsv"
    conda:
        ENV
    params:
        stem=lambda wc, output: os.path.splitext(output[0])[0],
        caption=f"Box AP on the {config['experiment']} val split (percent).",
    shell:
        "python -m bags table --metrics baseline={input.baseline} BAGS={input.bags} "
        "--caption '{params.caption}' --out-stem {params.stem} 2> {log}"
