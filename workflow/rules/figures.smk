rule plot_weight_norms:
    input:
        balanced=f"{EXP}/runs/balanced/baseline/weight_norms.csv",
        longtail=f"{EXP}/runs/longtail/baseline/weight_norms.csv",
    output:
        pdf=f"{EXP}/figures/weight_norms.pdf",
        png=report(
            f"{EXP}/figures/weight_norms.png",
            caption="../report/weight_norms.rst",
            category="Figures",
        ),
    log:
        f"{EXP}/logs/figures/weight_norms.log",
    benchmark:
        f"{EXP}/benchmarks/figures/weight_norms.tsv"
    conda:
        ENV
    params:
        stem=lambda wc, output: os.path.splitext(output[0])[0],
    shell:
        "python -m bags figure weight_norms --norms balanced={input.balanced} "
        "long-tailed={input.longtail} --out-stem {params.stem} 2> {log}"


rule plot_weight_norms_bags:
    input:
        baseline=f"{EXP}/runs/longtail/baseline/weight_norms.csv",
        bags=f"{EXP}/runs/longtail/bags/weight_norms.csv",
    output:
        pdf=f"{EXP}/figures/weight_norms_bags.pdf",
        png=report(
            f"{EXP}/figures/weight_norms_bags.png",
            caption="../report/weight_norms_bags.rst",
            category="Figures",
        ),
    log:
        f"{EXP}/logs/figures/weight_norms_bags.log",
    benchmark:
        f"{EXP}/benchmarks/figures/weight_norms_bags.tsv"
    conda:
        ENV
    params:
        stem=lambda wc, output: os.path.splitext(output[0])[0],
    shell:
        "python -m bags figure weight_norms_bags --norms baseline={input.baseline} "
        "BAGS={input.bags} --out-stem {params.stem} 2> {log}"


rule check_claims:
    input:
        baseline_norms=f"{EXP}/runs/longtail/baseline/weight_norms.csv",
        balanced_norms=f"{EXP}/runs/balanced/baseline/weight_norms.csv",
        bags_norms=f"{EXP}/runs/longtail/bags/weight_norms.csv",
        baseline_metrics=f"{EXP}/runs/longtail/baseline/metrics.json",
        bags_metrics=f"{EXP}/runs/longtail/bags/metrics.json",
    output:
        report(f"{EXP}/claims.md", caption="../report/claims.rst", category="Claims"),
    log:
        f"{EXP}/logs/claims.log",
    benchmark:
        f"{EXP}/benchmarks/claims.tsv"
    conda:
        ENV
    params:
        title=f"Claims of the paper on the {config['experiment']} experiment",
    shell:
        "python -m bags claims --baseline-norms {input.baseline_norms} "
        "--balanced-norms {input.balanced_norms} --bags-norms {input.bags_norms} "
        "--baseline-metrics {input.baseline_metrics} --bags-metrics {input.bags_metrics} "
        "--title '{params.title}' --out {output} 2> {log}"
