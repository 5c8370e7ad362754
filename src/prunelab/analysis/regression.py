"""The Prune Responsibly regression: which classes lose accuracy when a model is pruned, and why.

Following Paganini (2020), per-class test accuracy after pruning is regressed
on the class's accuracy and predictive entropy in the unpruned reference
(validation split), its share of the training set, the sparsity reached, and
the study's factors. Classes of one training run share its noise, so standard
errors are clustered by run (``root_id``); a binomial GLM on the same formula
checks that the conclusions do not hinge on the linear model.

References
----------
Paganini, "Prune Responsibly", arXiv:2009.09936.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import PrunelabWarning
from .frames import CLASS_COLUMNS, AnalysisError

if TYPE_CHECKING:
    import pandas

__all__ = ["prune_responsibly_model", "RegressionResult", "DEFAULT_FORMULA", "FACTORS"]

#: The study's categorical factors (dropped from the default formula when they have one level).
FACTORS = ("dataset_name", "model_name", "technique", "treatment")
#: Continuous terms of the default formula.
COVARIATES = ("reference_accuracy", "entropy", "representation", "sparsity")
DEFAULT_FORMULA = "accuracy ~ " + " + ".join([*COVARIATES, *(f"C({f})" for f in FACTORS)])


@dataclass
class RegressionResult:
    """What :func:`prune_responsibly_model` found.

    The constructor's parameters are the attributes.

    Parameters
    ----------
    formula : str
        The formula fitted (one-level factors removed).
    table : pandas.DataFrame
        One row per coefficient: ``term``, ``estimate``, ``std_error``,
        ``ci_low``, ``ci_high`` (95%, t with clusters − 1 degrees of freedom),
        ``p_value``.
    factor_tests : pandas.DataFrame
        A Wald F-test per term (all of a factor's levels jointly), with the
        clustered covariance: ``term``, ``F``, ``df_num``, ``df_denom``, ``p_value``.
    glm : pandas.DataFrame
        The binomial GLM's slopes (logit link; the outcome is the count
        of correct test samples of the class out of ``count``, clustered errors)
        and ``agrees``: the same sign as OLS, or both insignificant at 5%.
    n : int
        Rows used.
    clusters : int
        Training runs used (the clusters of the standard errors).
    warnings : list of str, optional
        What limits the interpretation (one-level factors, constant representation); default none.
    ols : statsmodels RegressionResults, optional
        The fitted OLS model, with the clustered covariance; None when not given.
    """

    formula: str
    table: pandas.DataFrame
    factor_tests: pandas.DataFrame
    glm: pandas.DataFrame
    n: int
    clusters: int
    warnings: list[str] = field(default_factory=list)
    ols: Any = None

    def __str__(self) -> str:
        lines = [f"Prune Responsibly regression: {self.formula}",
                 f"{self.n} rows, {self.clusters} training runs (standard errors clustered by run)",
                 self.table.to_string(index=False, float_format=lambda v: f"{v:.4g}"), "",
                 self.factor_tests.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def prune_responsibly_model(class_frame: pandas.DataFrame, formula: str | None = None, *,
                            pruned_only: bool = True) -> RegressionResult:
    """Fit the Prune Responsibly regression on a class frame.

    Parameters
    ----------
    class_frame : pandas.DataFrame
        From :func:`prunelab.analysis.class_frame`. It needs ``root_id`` and
        the columns the formula reads; ``count`` (test samples per class) is
        optional: without it the binomial GLM check is skipped, with a warning.
    formula : str, optional
        A Patsy formula over the frame's columns (with Patsy's functions, such as
        ``C``, ``Q`` and ``I``, and NumPy as ``np``); the default is
        :data:`DEFAULT_FORMULA` without the factors that have one level (or
        are not in the frame).
    pruned_only : bool, default=True
        Fit on pruned states only (the unpruned rows are the references).

    Returns
    -------
    RegressionResult
        The formula fitted, the coefficients, the F-tests per term, the GLM check and the warnings.

    Raises
    ------
    AnalysisError
        When the formula is not a valid Patsy formula, when a column it
        reads (or ``root_id``) is missing (the message names them and where
        they come from), or when fewer than two training runs, or no rows, remain.
    """
    import numpy as np
    import pandas as pd
    import statsmodels.formula.api as smf

    data = class_frame
    if pruned_only and "technique" in data:
        data = data[data["technique"] != "none"]
    notes: list[str] = []
    if formula is None:
        formula = _default_formula(data, notes)
    read = _required_columns(data, formula)
    data = data[list(dict.fromkeys([*read, "root_id", *(["count"] if "count" in data else [])]))].dropna()
    clusters = data["root_id"].nunique() if len(data) else 0
    if len(data) == 0 or clusters < 2:
        raise AnalysisError(
            f"the regression needs rows from at least two training runs (root_id); it has {len(data)} rows "
            f"from {clusters}. Run more seeds, or check that outcome states were evaluated."
        )
    groups = pd.factorize(data["root_id"])[0]
    # Patsy sniffs a column of strings element by element (seconds at a million rows); as a pandas
    # Categorical (levels sorted, as Patsy sorts them) it reads the codes at once: the same design.
    data = data.assign(**{c: data[c].astype("category") for c in read
                          if c in data and not pd.api.types.is_numeric_dtype(data[c])
                          and not isinstance(data[c].dtype, pd.CategoricalDtype)})
    model = smf.ols(formula, data, eval_env={"C": _categorical, "np": np})  # and Patsy's own functions
    rank = int(np.linalg.matrix_rank(model.exog))
    if rank < model.exog.shape[1]:
        notes.append(f"the design has {model.exog.shape[1]} columns but rank {rank}: some terms are confounded "
                     "(e.g. sparsity with technique when each technique reached one sparsity), so their "
                     "coefficients are not identified; vary the confounded terms independently (more rounds).")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' rank warnings: reported above in plain words
        ols = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    interval = ols.conf_int(0.05)
    table = pd.DataFrame({"term": ols.params.index, "estimate": ols.params.to_numpy(),
                          "std_error": ols.bse.to_numpy(), "ci_low": interval[0].to_numpy(),
                          "ci_high": interval[1].to_numpy(), "p_value": ols.pvalues.to_numpy()})
    glm = _glm_check(data, model, table, groups, notes)
    for note in notes:
        warnings.warn(note, PrunelabWarning, stacklevel=2)
    return RegressionResult(formula, table, _factor_tests(ols), glm, int(len(data)), int(clusters), notes, ols)


def _categorical(data: Any, contrast: Any = None, levels: Any = None) -> Any:
    """Patsy's ``C()`` for the formula, giving a pandas Categorical column back as it is.

    Patsy reads a bare Categorical's codes at once, but looks at each value
    of a boxed one in Python (seconds at a million rows); its levels and the
    default contrast are the Categorical's either way, so the design is the same.
    """
    import pandas as pd
    from patsy.categorical import C

    if contrast is None and levels is None and isinstance(getattr(data, "dtype", None), pd.CategoricalDtype):
        return data
    return C(data, contrast, levels)


def _default_formula(data: pandas.DataFrame, notes: list[str]) -> str:
    """:data:`DEFAULT_FORMULA` without the factors that have one level or are absent, and the covariates that
    do not vary; what was left out and why goes to ``notes``.

    Parameters
    ----------
    data : pandas.DataFrame
        The rows to fit.
    notes : list of str
        Appended to.
    """
    terms = list(COVARIATES)
    for factor in FACTORS:
        if factor not in data:
            notes.append(f"factor {factor!r} is not in the frame, so its effect cannot be estimated; it was left "
                         "out of the formula (class_frame(exp) gives it).")
        elif data[factor].nunique() > 1:
            terms.append(f"C({factor})")
        else:
            notes.append(f"factor {factor!r} has one level here, so its effect cannot be estimated; "
                         "it was left out of the formula.")
    for covariate in COVARIATES:
        if covariate in data and data[covariate].nunique(dropna=True) <= 1:
            hint = (" (every class has the same share of the training set); add a class-imbalanced arm "
                    "with prunelab.zoo.imbalance" if covariate == "representation" else "")
            notes.append(f"{covariate} does not vary{hint}, so its coefficient is not identified; it was "
                         "left out of the formula.")
            terms.remove(covariate)
    return "accuracy ~ " + " + ".join(terms)


def _required_columns(data: pandas.DataFrame, formula: str) -> list[str]:
    """The columns ``formula`` reads; an :class:`AnalysisError` naming those missing (and ``root_id``) and where
    they come from.

    Parameters
    ----------
    data : pandas.DataFrame
        The class frame.
    formula : str
        A Patsy formula; names called as functions (``C``, ``np.log``) are not columns, and ``Q("name")``
        reads the column ``name``.
    """
    import ast

    from patsy import ModelDesc, PatsyError

    try:
        desc = ModelDesc.from_formula(formula)
    except PatsyError as err:
        raise AnalysisError(f"the formula {formula!r} is not a valid Patsy formula ({err.message}); write it as "
                            f"'outcome ~ term + term', e.g. {DEFAULT_FORMULA!r}.") from err
    read: list[str] = []
    for factor in [f for term in [*desc.lhs_termlist, *desc.rhs_termlist] for f in term.factors]:
        tree = ast.parse(factor.code, mode="eval")
        called = {id(n) for call in ast.walk(tree) if isinstance(call, ast.Call) for n in ast.walk(call.func)}
        read += [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called]
        read += [call.args[0].value for call in ast.walk(tree)  # Q("class"): Patsy's quoting of a column name
                 if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Q"
                 and call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)]
    missing = [c for c in dict.fromkeys([*read, "root_id"]) if c not in data]
    if missing:
        ours = [c for c in missing if c in CLASS_COLUMNS]
        where = ([f"class_frame(exp) gives {', '.join(ours)}"] if ours else []) + (
            [f"the formula names {', '.join(c for c in missing if c not in ours)}: add them to the frame or change "
             "the formula"] if len(ours) < len(missing) else [])
        raise AnalysisError(f"the class frame has no column(s) {', '.join(map(repr, missing))}, which the regression "
                            f"needs ({formula!r}, clustered by root_id); {'; '.join(where)}.")
    return list(dict.fromkeys(read))


def _factor_tests(ols: Any) -> pandas.DataFrame:
    """A Wald F-test per term of a fitted OLS (a factor's levels jointly), with its clustered covariance.

    Parameters
    ----------
    ols : statsmodels RegressionResults
        The fitted model.
    """
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' notes on the Wald test's form
        wald = ols.wald_test_terms(skip_single=False, scalar=True)
    return pd.DataFrame(
        [{"term": term, "F": float(row["statistic"]), "df_num": float(row["df_constraint"]),
          "df_denom": float(row["df_denom"]), "p_value": float(row["pvalue"])}
         for term, row in wald.table.iterrows() if term != "Intercept"],
        columns=["term", "F", "df_num", "df_denom", "p_value"])


def _glm_check(data: pandas.DataFrame, model: Any, table: pandas.DataFrame, groups: Any,
               notes: list[str]) -> pandas.DataFrame:
    """The binomial GLM's slopes on the OLS design, and whether they agree with the OLS ones.

    Skipped (an empty frame, and a note saying why) without a ``count``
    column, or when the GLM cannot be fitted.

    Parameters
    ----------
    data : pandas.DataFrame
        The rows fitted, with ``accuracy`` and (optionally) ``count``.
    model : statsmodels OLS
        The unfitted OLS model (its design matrix is reused).
    table : pandas.DataFrame
        The OLS coefficients (``estimate``, ``p_value``).
    groups : array of int
        The training run of each row, for clustered errors.
    notes : list of str
        Appended to when the check is skipped.
    """
    import numpy as np
    import pandas as pd
    import statsmodels.api as sm

    empty = pd.DataFrame(columns=["term", "estimate", "p_value", "agrees"])
    if "count" not in data:
        notes.append("the frame has no 'count' column (test samples per class), so the binomial GLM check was "
                     "skipped; class_frame(exp) gives it.")
        return empty
    count = data["count"].to_numpy(float)
    correct = np.round(data["accuracy"].to_numpy(float) * count)
    terms = table["term"].to_numpy()
    slopes = terms != "Intercept"  # an intercept's sign differs between the scales
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = sm.GLM(np.column_stack([correct, count - correct]), model.exog,
                         family=sm.families.Binomial()).fit(cov_type="cluster", cov_kwds={"groups": groups})
    except (np.linalg.LinAlgError, ValueError) as err:
        notes.append(f"the binomial GLM check could not be fitted ({err}); the design is too small or degenerate.")
        return empty
    glm = pd.DataFrame({"term": terms[slopes], "estimate": np.asarray(fit.params)[slopes],
                        "p_value": np.asarray(fit.pvalues)[slopes]})
    both_null = (glm["p_value"].to_numpy() >= 0.05) & (table["p_value"].to_numpy()[slopes] >= 0.05)
    same_sign = np.sign(glm["estimate"].to_numpy()) == np.sign(table["estimate"].to_numpy()[slopes])
    glm["agrees"] = same_sign | both_null
    return glm
