/* objects.h's fill_maps(): the host's MAP KEY VALUE lines (from --maps) written into a user's
 * object's maps after its load. */
#include "../common.h"
#include "objects.h"

#include <bpf/bpf.h>

static int parse_bytes(const char *token, unsigned char *out, int size)
{
	if (!strncmp(token, "0x", 2)) {
		if ((int)strlen(token + 2) != 2 * size)
			return -1;
		for (int i = 0; i < size; i++)
			if (sscanf(token + 2 + 2 * i, "%2hhx", &out[i]) != 1)
				return -1;
		return 0;
	}
	char *end;
	unsigned long long v = strtoull(token, &end, 10);

	if (*end || size > 8 || (size < 8 && v >> (8 * size)))
		return -1;
	for (int i = 0; i < size; i++) {        /* the guest's own byte order, as the program reads it */
		int shift = 8 * (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? i : size - 1 - i);

		out[i] = (v >> shift) & 0xff;
	}
	return 0;
}

void fill_maps(struct bpf_object **objs, int nr_objs, const char *path)
{
	char name[128], key_text[1024], value_text[1024];
	unsigned char key[512], value[512];
	int line = 0, shared = !strncmp(path, "shared:", 7);
	FILE *f;

	if (!strcmp(path, "-"))
		return;
	path += shared ? 7 : 0;     /* one file for several objects: each takes the maps it has */
	f = fopen(path, "r");
	if (!f)
		fail("open maps file %s", path);
	while (fscanf(f, "%127s %1023s %1023s", name, key_text, value_text) == 3) {
		struct bpf_map *map = NULL;
		int key_size, value_size;

		for (int i = 0; i < nr_objs && !map; i++)       /* several objects: the first that has it */
			map = bpf_object__find_map_by_name(objs[i], name);
		line++;
		if (!map && shared)
			continue;
		if (!map)
			fail("--maps entry %d: no object has a map named %s", line, name);
		key_size = bpf_map__key_size(map);
		value_size = bpf_map__value_size(map);
		if (key_size > (int)sizeof(key) || value_size > (int)sizeof(value) ||
		    parse_bytes(key_text, key, key_size) || parse_bytes(value_text, value, value_size))
			fail("--maps entry %d (map %s): key %s / value %s do not fit its key size %d / value size %d "
			     "(give an integer, or 0x and exactly that many bytes in hex)",
			     line, name, key_text, value_text, key_size, value_size);
		if (bpf_map_update_elem(bpf_map__fd(map), key, value, BPF_ANY))
			program_refused("maps", name, errno);
	}
	fclose(f);
}

