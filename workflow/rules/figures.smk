rule plot_weight_norms:
    input:
        balanced=run_file("balanced", "baseline", SEEDS[0], "weight_norms.csv"),
        longtail=run_file("longtail", "baseline", SEEDS[0], "weight_norms.csv"),
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
        baseline=run_file("longtail", "baseline", SEEDS[0], "weight_norms.csv"),
        bags=run_file("longtail", "bags", SEEDS[0], "weight_norms.csv"),
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
        baseline_norms=run_file("longtail", "baseline", SEEDS[0], "weight_norms.csv"),
        balanced_norms=run_file("balanced", "baseline", SEEDS[0], "weight_norms.csv"),
        bags_norms=run_file("longtail", "bags", SEEDS[0], "weight_norms.csv"),
        baseline_metrics=run_file("longtail", "baseline", SEEDS[0], "metrics.json"),
        bags_metrics=run_file("longtail", "bags", SEEDS[0], "metrics.json"),
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


rule plot_per_bin_ap:
    input:
        lambda wc: [
            p for paths in metrics_of(methods_in("comparison")).values() for p in paths
        ],
    output:
        pdf=f"{EXP}/figures/per_bin_ap.pdf",
        png=report(
            f"{EXP}/figures/per_bin_ap.png",
            caption="../report/per_bin_ap.rst",
            category="Figures",
        ),
    log:
        f"{EXP}/logs/figures/per_bin_ap.log",
    benchmark:
        f"{EXP}/benchmarks/figures/per_bin_ap.tsv"
    conda:
        ENV
    params:
        stem=lambda wc, output: os.path.splitext(output[0])[0],
        metrics=named_metrics(methods_in("comparison")),
    shell:
        "python -m bags figure per_bin_ap --metrics {params.metrics} "
        "--out-stem {params.stem} 2> {log}"


rule plot_weight_norms_methods:
    input:
        [run_file("longtail", n, SEEDS[0], "weight_norms.csv") for n in RETRAINED],
    output:
        pdf=f"{EXP}/figures/weight_norms_methods.pdf",
        png=report(
            f"{EXP}/figures/weight_norms_methods.png",
            caption="../report/weight_norms_methods.rst",
            category="Figures",
        ),
    log:
        f"{EXP}/logs/figures/weight_norms_methods.log",
    benchmark:
        f"{EXP}/benchmarks/figures/weight_norms_methods.tsv"
    conda:
        ENV
    params:
        stem=lambda wc, output: os.path.splitext(output[0])[0],
        norms=" ".join(
            f"'{METHODS[n]['label']}={run_file('longtail', n, SEEDS[0], 'weight_norms.csv')}'"
            for n in RETRAINED
        ),
        reference=METHODS["baseline"]["label"],
    shell:
        "python -m bags figure weight_norms_methods --norms {params.norms} "
        "--reference '{params.reference}' --out-stem {params.stem} 2> {log}"
