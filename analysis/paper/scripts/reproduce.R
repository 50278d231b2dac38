# Recomputes the paper's survival estimates from data/analysis_data.csv with R's survival package
# alone: medians with 95% CI and survival at the plan's times (Kaplan-Meier, log(-log) CI), and
# every univariable and multivariable Cox hazard ratio (Efron ties, Wald CI and p). Writes them to
# reproduced.json with the keys of report.json. Run in this folder: Rscript reproduce.R
library(survival)

# --- the analysis plan (plan.json) ---
@PLAN@

d <- read.csv("data/analysis_data.csv", comment.char = "#", na.strings = "", stringsAsFactors = FALSE)
d <- d[d$eligible == 1, ]
# The factors the Cox models read, derived as the registry derives them (analysis/factors.py).
d$sex_male <- ifelse(d$sex == "male", 1, ifelse(d$sex == "female", 0, NA))
d$age_per_10y <- d$age_at_pm / 10
d$grade_G3 <- ifelse(d$grade == "G3", 1, ifelse(d$grade %in% c("G1", "G2"), 0, NA))
d$histology <- factor(d$histology, levels = histologies)  # the reference level first

endpoint <- function(e) {
  fit <- survfit(Surv(d[[paste0(e, "_months")]], d[[paste0(e, "_event")]]) ~ 1, conf.type = "log-log")
  median <- quantile(fit, 0.5)
  at <- summary(fit, times = rate_times, extend = FALSE)  # nothing beyond the last observed time
  rates <- lapply(rate_times, function(t) {
    i <- match(t, at$time)
    list(months = t, survival = at$surv[i], ci95 = c(at$lower[i], at$upper[i]))
  })
  list(n = fit$n, events = sum(fit$n.event), median_months = unname(median$quantile),
       median_ci95 = unname(c(median$lower, median$upper)), rates = rates)
}

cox <- function(e, terms) {
  formula <- as.formula(sprintf("Surv(%s_months, %s_event) ~ %s", e, e, paste(terms, collapse = " + ")))
  fit <- coxph(formula, data = d, ties = "efron")
  s <- summary(fit)
  lapply(seq_along(coef(fit)), function(i) list(
    endpoint = e, factor = sub("^histology", "histology_", names(coef(fit))[i]), n = fit$n, events = fit$nevent,
    hr = s$conf.int[i, "exp(coef)"], ci95 = unname(s$conf.int[i, c("lower .95", "upper .95")]),
    p = s$coefficients[i, "Pr(>|z|)"]))
}

univariable <- list()
for (e in c("dfs", "os")) for (f in factors) univariable <- c(univariable, cox(e, f))
multivariable <- lapply(multivariable_endpoints, function(e) {
  terms <- cox(e, covariates)
  list(endpoint = e, n = terms[[1]]$n, events = terms[[1]]$events,
       terms = lapply(terms, function(t) t[c("factor", "hr", "ci95", "p")]))
})
result <- list(endpoints = sapply(c("dfs", "os"), endpoint, simplify = FALSE),
               univariable = univariable, multivariable = multivariable)

# JSON by hand (base R has no writer): numbers to R's printed precision (7 significant digits).
json <- function(x) {
  if (is.list(x) && !is.null(names(x)))
    return(paste0("{", paste0('"', names(x), '": ', vapply(x, json, ""), collapse = ", "), "}"))
  if (is.list(x)) return(paste0("[", paste(vapply(x, json, ""), collapse = ", "), "]"))
  if (is.character(x)) v <- paste0('"', x, '"') else v <- ifelse(is.finite(x), sprintf("%.7g", as.numeric(x)), "null")
  if (length(x) == 1) v else paste0("[", paste(v, collapse = ", "), "]")
}
writeLines(json(result), "reproduced.json")
cat("Wrote reproduced.json: compare it with report.json (endpoints, univariable, multivariable).\n")
