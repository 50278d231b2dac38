from django.apps import AppConfig


def export_frame(*, user, centre, freeze=None):
    # pandas is imported only when an export asks for the frame, not at every start.
    from analysis.frame import export_frame

    return export_frame(user=user, centre=centre, freeze=freeze)


class AnalysisConfig(AppConfig):
    name = "analysis"
    verbose_name = "Survival analysis"

    def ready(self):
        # Every dataset export carries the analysis frame (registry/transfer/exporting).
        from registry.transfer import exporting

        exporting.register_frame_loader(export_frame)
