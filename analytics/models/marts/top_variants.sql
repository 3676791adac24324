select
    storefront_id,
    variant_id,
    any_value(size_name_en) as size,
    any_value(material_name_en) as material,
    any_value(print_type_name_en) as print_type,
    any_value(color_name_en) as color,
    cast(sum(quantity) as bigint) as quantity,
    sum(total_price_value) as revenue,
    total_price_currency as currency,
    count(distinct order_id) as orders
from ({{ sold_items() }})
group by all
order by storefront_id, revenue desc, quantity desc, variant_id
