"""The served app (`navigator serve`): browsers reach the labeler's app through a websocket, one app
process per signed-in labeler, behind a login, a ceiling on processes and an origin check.

pages.py renders the HTML (the app page, login, "full", "ended"); sessions.py keeps the running app
processes and their limits; server.py is the aiohttp application that ties them to requests.
"""
