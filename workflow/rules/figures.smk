# One rule per row of the figure table (src/bags/analysis/figure_table.py), and the claims.


for _figure in FIGURE_TABLE:

    rule:
        name:
            f"plot_{_figure.name}"
        input:
            [pair.rpartition("=")[2] for pair in figure_runs(_figure.runs)],
        output:
            pdf=f"{EXP}/figures/{_figure.name}.pdf",
            png=report(
                f"{EXP}/figures/{_figure.name}.png",
                caption="../report/figure.rst",
                category="Figures",
            ),
        log:
            f"{EXP}/logs/figures/{_figure.name}.log",
        benchmark:
            f"{EXP}/benchmarks/figures/{_figure.name}.tsv"
        localrule: True
        conda:
            ENV
        params:
            kind=_figure.name,
            inputs=figure_runs(_figure.runs),
            caption=_figure.caption,
            stem=lambda wc, output: os.path.splitext(output[0])[0],
        shell:
            "exec python -m bags figure --kind {params.kind:q} --inputs {params.inputs:q} "
            "--out-stem {params.stem:q} 2> {log:q}"


rule check_claims:
    input:
        baseline_norms=run_file("longtail", "baseline", SEEDS[0], "weight_norms.csv"),
        balanced_norms=run_file("balanced", "baseline", SEEDS[0], "weight_norms.csv"),
        bags_norms=run_file("longtail", "bags", SEEDS[0], "weight_norms.csv"),
        baseline_metrics=metrics_of(["baseline"]),
        bags_metrics=metrics_of(["bags"]),
        rows=metrics_of(PAPER_ROWS),
        all_rows=metrics_of(methods_in("comparison")),
    output:
        report(f"{EXP}/claims.md", caption="../report/claims.rst", category="Claims"),
    log:
        f"{EXP}/logs/claims.log",
    benchmark:
        f"{EXP}/benchmarks/claims.tsv"
    localrule: True
    conda:
        ENV
    params:
        rows=named_metrics(PAPER_ROWS),
        all_rows=named_metrics(methods_in("comparison")),
        bags=METHODS["bags"]["label"],
        title=f"Claims of the paper on the {config['experiment']} experiment"
        + (
            f" (AP: means over seeds {SEEDS}; weight norms: seed {SEEDS[0]})"
            if len(SEEDS) > 1
            else ""
        ),
    shell:
        "exec python -m bags claims --baseline-norms {input.baseline_norms:q} "
        "--balanced-norms {input.balanced_norms:q} --bags-norms {input.bags_norms:q} "
        "--baseline-metrics {input.baseline_metrics:q} --bags-metrics {input.bags_metrics:q} "
        "--rows {params.rows:q} --all-rows {params.all_rows:q} --bags-label {params.bags:q} "
        "--title {params.title:q} --out {output:q} 2> {log:q}"
