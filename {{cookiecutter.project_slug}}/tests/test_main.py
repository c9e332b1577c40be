"""The home page and the stylesheet."""

from markupsafe import escape

PROJECT_NAME = {{ cookiecutter.__project_name_py }}


def test_index(client):
    """The home page names the project and links to the notes and the stylesheet."""
    response = client.get("/")
    assert response.status_code == 200
    assert str(escape(PROJECT_NAME)) in response.text
    assert 'href="/notes/"' in response.text
    assert 'href="/static/style.css"' in response.text


def test_stylesheet(client):
    """The stylesheet is served as CSS."""
    response = client.get("/static/style.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    response.close()


def test_links_keep_mount_path(client):
    """Mounted under a path (the app server sets SCRIPT_NAME), links and assets keep it."""
    response = client.get("/", environ_overrides={"SCRIPT_NAME": "/mounted"})
    assert response.status_code == 200
    assert 'href="/mounted/notes/"' in response.text
    assert 'href="/mounted/static/style.css"' in response.text
