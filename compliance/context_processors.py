from django.utils.functional import SimpleLazyObject

from .training.selectors import training_banner


def training(request):
    """The page banner: an active suspension, and training that is due or overdue.

    Lazy, so pages that do not render the banner do not pay for its queries; evaluated on every
    page that does, so a suspension shows in an already open session at the next click.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_active:
        return {}
    return {"training_banner": SimpleLazyObject(lambda: training_banner(user=user))}
