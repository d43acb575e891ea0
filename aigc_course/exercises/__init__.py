"""Solutions to the chapters' exercises, one module per chapter.

A notebook's solution cell imports its solution from here and shows the source;
``make student`` replaces that cell with a stub of the same signature.
"""
