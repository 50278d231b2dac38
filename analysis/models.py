"""Saved analysis plans: a PI names a set of cut-offs and covariates and reopens it later.

The plan itself stays an ``AnalysisPlan`` (analysis/plan.py); the row only stores its JSON, so a
saved plan is validated exactly like one given to the API or to ``survival_report --plan``.
"""
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from analysis.plan import AnalysisPlan


class SavedPlan(models.Model):
    name = models.CharField(_("name"), max_length=120)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_plans",
                              verbose_name=_("owner"))
    plan = models.JSONField(_("analysis plan"), help_text=_("AnalysisPlan.to_dict(); its 'name' is this row's name."))
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("saved analysis plan")
        verbose_name_plural = _("saved analysis plans")

    def __str__(self):
        return self.name

    def analysis_plan(self):
        """The stored plan as an AnalysisPlan (PlanError if the stored JSON is no longer valid)."""
        return AnalysisPlan.from_dict(self.plan)
