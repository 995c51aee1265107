# The comparison table and the BAGS ablations: one row per method, mean and std over seeds.


rule table:
    input:
        lambda wc: metrics_of(table_rows(wc.table)),
    output:
        csv=report(
            f"{EXP}/tables/{{table}}.csv",
            caption="../report/tables.rst",
            category="Tables",
        ),
        md=f"{EXP}/tables/{{table}}.md",
        tex=f"{EXP}/tables/{{table}}.tex",
    log:
        f"{EXP}/logs/tables/{{table}}.log",
    benchmark:
        f"{EXP}/benchmarks/tables/{{table}}.tsv"
    wildcard_constraints:
        table=pattern(TABLES),
    localrule: True
    conda:
        ENV
    params:
        stem=lambda wc, output: os.path.splitext(output[0])[0],
        metrics=lambda wc: named_metrics(table_rows(wc.table)),
        options=lambda wc: table_options(wc.table),
        caption=(
            f"Box AP (%) on the {config['experiment']} val split, "
            f"{'mean and std over ' if len(SEEDS) > 1 else ''}seeds {SEEDS}."
        ),
    shell:
        "exec python -m bags table --metrics {params.metrics:q} {params.options:q} "
        "--caption {params.caption:q} --out-stem {params.stem:q} 2> {log:q}"
