,
"serve!

idsPlaceholder*
dtype0	