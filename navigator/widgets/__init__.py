"""The app's widgets, one per module: the screens compose them and route their messages.

Every widget here shows workspace, import or model text, which is untrusted:
it is drawn as plain text (navigator.display.visible), never parsed as markup.
"""
